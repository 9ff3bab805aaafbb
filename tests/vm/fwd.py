#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# One guest connection to the controller, relayed to the host: QEMU's guestfwd=tcp:10.0.2.100:443-cmd:… starts
# this once per connection the guest opens, with that connection on stdin/stdout; it connects to 127.0.0.1:PORT
# (the host's evc, argv[1]) and copies bytes both ways until both sides are done. If evc is not listening, or
# the file argv[2] exists (the test cut the controller off), the guest's connection is closed at once.
import os, select, socket, sys

if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
    sys.exit(0)

try:
    up = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
except OSError:
    sys.exit(0)
up.settimeout(None)


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


down_in, down_out = 0, 1
open_in, open_up = True, True
while open_in or open_up:
    r, _, _ = select.select(([down_in] if open_in else []) + ([up] if open_up else []), [], [], 300)
    if not r:
        break
    if down_in in r:
        data = os.read(down_in, 65536)
        if data:
            up.sendall(data)
        else:
            open_in = False
            try:
                up.shutdown(socket.SHUT_WR)
            except OSError:
                pass
    if up in r:
        try:
            data = up.recv(65536)
        except OSError:
            data = b''
        if data:
            write_all(down_out, data)
        else:
            open_up = False
            try:
                socket.socket(fileno=os.dup(down_out)).shutdown(socket.SHUT_WR)
            except OSError:
                pass
