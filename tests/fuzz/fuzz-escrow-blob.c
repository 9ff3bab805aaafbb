/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: an escrow blob as the controller releases it (AttestVolumeKeyData, V1), through the unpacker
 * and the unwrap with a fixed KDF input: arbitrary bytes must never unwrap (GCM tag), and a blob that
 * unpacks must pack to something that unpacks to the same fields. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "memory-util.h"
#include "vault-escrow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint8_t zx[TPM2_ECC_P256_SIZE] = { 0x42 };
        EscrowData d, again;
        _cleanup_free_ uint8_t *packed = NULL;
        size_t packed_size;
        uint8_t *secret = NULL;
        const char *why = NULL;

        if (escrow_data_unpack(data, size, &d, &why) >= 0) {
                assert(escrow_data_pack(&d, &packed, &packed_size) >= 0);
                assert(escrow_data_unpack(packed, packed_size, &again, &why) >= 0);
                assert(memcmp(&d, &again, sizeof d) == 0);
        } else
                assert(why);

        /* Nothing the fuzzer makes carries a valid tag under this key. */
        assert(escrow_open_with(zx, data, size, &secret, &why) < 0);
        assert(!secret);
        return 0;
}
