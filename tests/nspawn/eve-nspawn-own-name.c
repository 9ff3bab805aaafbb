/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-nspawn-own-name NAME: asks the system bus for NAME (no queueing) and says what the bus answered, for the
 * container cases that check who may own the daemons' names. Prints "owned", "exists" (the policy allows it,
 * someone else has it) or "denied" (the policy refuses it); exit status 0 for the first two, 1 otherwise. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "macro.h"

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (argc != 2) {
                fprintf(stderr, "Usage: %s NAME\n", argv[0]);
                return 1;
        }
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "Cannot connect to the system bus: %s\n", strerror(-r));
                return 1;
        }
        r = sd_bus_request_name(bus, argv[1], 0);
        if (r >= 0)
                puts("owned");
        else if (r == -EEXIST || r == -EALREADY)
                puts("exists");
        else if (r == -EACCES || r == -EPERM)
                puts("denied");
        else
                printf("error %s\n", strerror(-r));
        return r >= 0 || r == -EEXIST || r == -EALREADY ? 0 : 1;
}
