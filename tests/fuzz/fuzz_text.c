/* fuzz_text: the memcached text protocol on a real connection (parser,
 * command dispatch, data blocks, replies); see conn_harness.h. */
#include "conn_harness.h"

FUZZ_CONN_TARGET()
