#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# A stand-in for the controller in tests/vm/test-boot.sh: listens on 127.0.0.1 (port 0) and prints the port;
# answers each line L with "evc-ok L" and appends L to the file argv[1]. Ends on SIGTERM.
# QEMU's guestfwd to a tcp: chardev opens ONE connection when QEMU starts and carries the guest's connections to
# 10.0.2.100:80 over it as one byte stream; so this reads lines for as long as a connection lasts.
import socket, sys

srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(4)
print(srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    with c, c.makefile('rw') as f:
        try:
            for line in f:
                line = line.strip()
                f.write(f'evc-ok {line}\n')
                f.flush()
                with open(sys.argv[1], 'a') as log:
                    log.write(line + '\n')
        except OSError:
            pass
