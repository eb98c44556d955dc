/* main: placeholder until the front end lands (issue 3). */
#include <stdio.h>
int
main(void)
{
    fputs("fleetcached: the front end is not built yet\n", stderr);
    return 1;
}
