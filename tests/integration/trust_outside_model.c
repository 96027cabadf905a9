/* A shared object outside every allowed model directory. Its constructor
 * announces itself: if the bridge ever opens it, the line is in its log. */
#include <stdio.h>

__attribute__((constructor)) static void announce(void)
{
    fprintf(stderr, "OUTSIDE-MODEL-CONSTRUCTOR-RAN\n");
}
