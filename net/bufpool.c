/* bufpool: spare buffers on a stack. Invariant: spare[0, n) are distinct
 * malloc'd blocks nobody else holds. */
#include "net/bufpool.h"

#include <stdlib.h>

void *
bufpool_get(struct bufpool *p, size_t size)
{
    if (p->n > 0)
        return p->spare[--p->n];
    return malloc(size);
}

void
bufpool_put(struct bufpool *p, void *b)
{
    if (b == NULL)
        return;
    if (p->n < BUFPOOL_MAX)
        p->spare[p->n++] = b;
    else
        free(b);
}

void
bufpool_drain(struct bufpool *p)
{
    while (p->n > 0)
        free(p->spare[--p->n]);
}
