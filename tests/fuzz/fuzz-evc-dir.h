/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-evc-dir.h: the evc targets' controller: a fresh directory under /dev/shm (SQLite on tmpfs: no fsync
 * cost per execution), initialised and loaded once per process, removed when the process exits. */
#pragma once

#include "evc.h"

Evc *fuzz_evc_get(void);
