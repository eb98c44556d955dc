/* test_log: verbosity filtering and the rate-limited line (log_limited):
 * the first event is written, repeats within the interval are held and
 * counted, the next line after it says how many. stderr is captured in a
 * pipe, so each test reads exactly what was written. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "src/log.h"

static int pipefd[2];
static int saved_stderr;

static void
capture(void)
{
    cr_assert_eq(pipe(pipefd), 0);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    saved_stderr = dup(STDERR_FILENO);
    dup2(pipefd[1], STDERR_FILENO);
}

static void
release(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(pipefd[0]);
    close(pipefd[1]);
}

static const char *
captured(void)
{
    static char buf[4096];
    ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

TestSuite(log, .init = capture, .fini = release);

Test(log, lines_above_the_verbosity_are_not_written)
{
    log_setup(1);
    log_debug("hidden %d", 2);
    log_info("shown %d", 1);
    log_error("always");
    cr_assert_str_eq(captured(), "shown 1\nalways\n");
}

Test(log, a_limited_event_is_written_once_then_held_and_counted)
{
    static struct log_limit lim = LOG_LIMIT_INIT;
    log_setup(0);
    cr_assert(log_limited(&lim, 60000, LOG_ERROR, "gap from node %d", 7));
    for (int i = 0; i < 5; i++)
        cr_assert_not(log_limited(&lim, 60000, LOG_ERROR, "gap from node %d", 7));
    cr_assert_str_eq(captured(), "gap from node 7\n");
}

Test(log, the_next_line_after_the_interval_says_how_many_were_held)
{
    static struct log_limit lim = LOG_LIMIT_INIT;
    log_setup(0);
    cr_assert(log_limited(&lim, 1, LOG_ERROR, "bad MAC"));
    cr_assert_not(log_limited(&lim, 60000, LOG_ERROR, "bad MAC"));
    cr_assert_not(log_limited(&lim, 60000, LOG_ERROR, "bad MAC"));
    struct timespec ms = { 0, 2 * 1000 * 1000 };
    nanosleep(&ms, NULL); /* past the 1 ms interval of the first line */
    cr_assert(log_limited(&lim, 60000, LOG_ERROR, "bad MAC"));
    cr_assert_str_eq(captured(), "bad MAC\nbad MAC (and 2 more like it)\n");
}

Test(log, a_limited_event_below_the_verbosity_is_neither_written_nor_counted)
{
    static struct log_limit lim = LOG_LIMIT_INIT;
    log_setup(0);
    cr_assert_not(log_limited(&lim, 60000, LOG_INFO, "quiet"));
    log_setup(1);
    cr_assert(log_limited(&lim, 60000, LOG_INFO, "quiet"));
    cr_assert_str_eq(captured(), "quiet\n");
}
