// A memjs (npm) session against HOST PORT over the binary protocol: every
// operation memjs offers, each checked; exits 0 and prints "ok", or names
// the first mismatch. memjs's own quirks are worked around, not tested:
// its prepend sends an append, and its decrement needs an options object.
const memjs = require('memjs');
const [host, port] = [process.argv[2], process.argv[3]];
const c = memjs.Client.create(`${host}:${port}`, { timeout: 5, retries: 0, logger: { log() {} } });

function fail(what, got, want) {
  console.error(`${what}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
  process.exit(1);
}
function eq(what, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(what, got, want);
}
function stats() {
  return new Promise((resolve, reject) => c.stats((err, server, st) => err ? reject(err) : resolve(st)));
}

(async () => {
  eq('set', await c.set('a', 'hello', { expires: 0 }), true);
  let r = await c.get('a');
  eq('get', r.value && r.value.toString(), 'hello');
  eq('get flags', r.flags && r.flags.length, 4);
  r = await c.get('nope');
  eq('get miss', r.value, null);
  eq('add existing', await c.add('a', 'x'), false);
  eq('add new', await c.add('b', 'bee'), true);
  eq('replace', await c.replace('b', 'B'), true);
  eq('replace missing', await c.replace('zz', 'x'), false);
  eq('append', await c.append('a', '!'), true);
  r = await c.get('a');
  eq('after append', r.value.toString(), 'hello!');
  eq('append missing', await c.append('zz', '!').catch((e) => String(e).includes('not stored') ? 'refused' : String(e)), 'refused');
  eq('delete', await c.delete('a'), true);
  eq('delete missing', await c.delete('a'), false);
  eq('incr creates with initial', await c.increment('n', 5, { initial: 10 }), { success: true, value: 10 });
  eq('incr', await c.increment('n', 5, {}), { success: true, value: 15 });
  eq('decr floors at 0', await c.decrement('n', 20, {}), { success: true, value: 0 });
  eq('touch', await c.touch('b', 100), true);
  eq('touch missing', await c.touch('nope', 100), false);
  const big = 'x'.repeat(300000);
  eq('set big', await c.set('big', big, {}), true);
  r = await c.get('big');
  eq('get big', r.value.toString() === big, true);
  const st = await stats();
  if (!st || !st.pid || !st.version) fail('stats', st, 'pid and version');
  eq('flush', await c.flush(), { [`${host}:${port}`]: true });
  r = await c.get('b');
  eq('get after flush', r.value, null);
  c.close();
  console.log('ok');
})().catch((e) => { console.error('error: ' + e); process.exit(1); });
