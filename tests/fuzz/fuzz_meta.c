/* fuzz_meta: the meta protocol (mg ms md ma mn me) on a real connection;
 * the text target's harness (conn_harness.h), seeded with the meta cases. */
#include "conn_harness.h"

FUZZ_CONN_TARGET()
