/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* configd-credsock.h: secrets as systemd credentials. A consumer unit says
 *     LoadCredential=NAME:/run/eve/credentials.sock
 * and at unit start the service manager (as root, already in the unit's cgroup) connects to the socket from
 * a socket bound to the abstract address "\0<random hex>/unit/<unit name>/<credential id>" (systemd 246 and
 * later; "@%lx/unit/%s/%s" in libsystemd-core-254), reads until EOF and puts what it read in the unit's
 * credentials directory. configd parses the address, requires the peer to be root (an abstract address is
 * bindable by anyone; SO_PEERCRED is not forgeable), and, on a systemd-booted host, the peer's cgroup unit
 * to be the unit in the address; then checks the unit against the secret's ACL and writes the value. A
 * refused request is closed without a byte (the unit then sees an empty credential; the refusal is logged).
 *
 * Credential id: NAME delivers the secret's primary field, NAME@FIELD that field (docs/CONFIG.md). */
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include "macro.h"

#define CREDSOCK_NAME "credentials.sock"

/* Pure: parses the peer address systemd binds to. Returns 0 with the unit and credential id (newly
 * allocated), -EBADMSG for any other address (not abstract, not "<hex>/unit/<unit>/<id>", empty or invalid
 * unit or id, embedded NUL or '/' in the id). */
int credsock_parse_peer(const struct sockaddr_un *sa, socklen_t salen, char **ret_unit, char **ret_id);

/* Splits a credential id "NAME@FIELD" into the secret name and the field ("" when no '@'); newly allocated.
 */
int credsock_split_id(const char *id, char **ret_name, char **ret_field);

/* The listening socket at path (unlinks a stale one first), mode 0600, SOCK_STREAM, non-blocking, CLOEXEC.
 */
int credsock_listen(const char *path, int *ret_fd);
