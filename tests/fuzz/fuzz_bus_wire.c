/* fuzz_bus_wire: any datagram, as a node without a key receives it (see
 * wire_harness.h for the oracle). */
#include "wire_harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fw_init();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fw_decode(NULL, data, size);
    return 0;
}
