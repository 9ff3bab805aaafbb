#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# meson install script: the device units of the vaults' mappings get eve-vault-device.conf as a drop-in. Their
# names hold a backslash (dev-mapper-eve\x2dvault\x2dimage.device), which meson's install_dir cannot express.
#   install-vault-dropins.sh UNITDIR VAULT...
set -eu
unitdir=$1
shift
for vault in "$@"; do
        dir="${DESTDIR:-}$unitdir/dev-mapper-eve\\x2dvault\\x2d$vault.device.d"
        mkdir -p "$dir"
        install -m 0644 "$MESON_SOURCE_ROOT/units/eve-vault-device.conf" "$dir/eve-trust.conf"
done
