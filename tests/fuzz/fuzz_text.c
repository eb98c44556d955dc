/* fuzz_text: the memcached text protocol on a real connection (parser,
 * command dispatch, data blocks, replies); see conn_harness.h. */
#include "conn_harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_conn_init();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_conn_play(data, size);
    return 0;
}
