/* manpage: writes fleetcached.1 from its template, with the OPTIONS section
 * generated from the option rows (the same rows as -h), so the man page and
 * -h cannot disagree. Build tool, not installed. Usage: manpage TEMPLATE;
 * the template's line "@OPTIONS@" becomes the section, "@VERSION@" the
 * package version. */
#include <stdio.h>
#include <string.h>

#include "src/config.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: manpage TEMPLATE > fleetcached.1\n");
        return 64;
    }
    FILE *in = fopen(argv[1], "r");
    if (in == NULL) {
        perror(argv[1]);
        return 66;
    }
    char line[4096];
    while (fgets(line, sizeof(line), in) != NULL) {
        if (strcmp(line, "@OPTIONS@\n") == 0) {
            config_man(stdout);
            continue;
        }
        char *at = strstr(line, "@VERSION@");
        if (at != NULL) {
            *at = '\0';
            printf("%s%s%s", line, PACKAGE_VERSION, at + strlen("@VERSION@"));
            continue;
        }
        fputs(line, stdout);
    }
    fclose(in);
    return ferror(stdout) ? 1 : 0;
}
