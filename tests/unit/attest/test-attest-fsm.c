/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eve-attestd's state machine: the exchange in order, every (state, event) pair defined (unexpected ones
 * change nothing), restarts during a round, NO_CERT_FOUND resending the certificates, failures counted and
 * reset, and the retry delay: doubling, capped, jittered within [d/2, d]. */
#include "attest-fsm.h"
#include "tests.h"

#define A(x) ATTEST_ACTION_##x
#define EV(x) ATTEST_EVENT_##x
#define ST(x) ATTEST_STATE_##x

TEST(numbering_is_eves_attestation_state) {
        ASSERT_EQ(ST(UNSPECIFIED), 0);
        ASSERT_EQ(ST(NONCE_WAIT), 1);
        ASSERT_EQ(ST(TPM_QUOTE_WAIT), 2);
        ASSERT_EQ(ST(TPM_ESCROW_WAIT), 3);
        ASSERT_EQ(ST(ATTEST_WAIT), 4);
        ASSERT_EQ(ST(ATTEST_ESCROW_WAIT), 5);
        ASSERT_EQ(ST(RESTART_WAIT), 6);
        ASSERT_EQ(ST(COMPLETE), 7);
        for (int s = 0; s < _ATTEST_STATE_MAX; s++)
                ASSERT_NOT_NULL(attest_state_to_string(s));
        for (int e = 0; e < _ATTEST_EVENT_MAX; e++)
                ASSERT_NOT_NULL(attest_event_to_string(e));
        for (int a = 0; a < _ATTEST_ACTION_MAX; a++)
                ASSERT_NOT_NULL(attest_action_to_string(a));
        ASSERT_NULL(attest_state_to_string(_ATTEST_STATE_MAX));
}

TEST(good_path) {
        AttestFsm f = ATTEST_FSM_INIT;

        ASSERT_EQ(attest_fsm_step(&f, EV(START)), A(SEND_CERT));
        ASSERT_EQ(f.state, ST(UNSPECIFIED));
        ASSERT_EQ(f.attempts, 1);
        ASSERT_EQ(attest_fsm_step(&f, EV(CERT_OK)), A(SEND_NONCE));
        ASSERT_EQ(f.state, ST(NONCE_WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(NONCE_OK)), A(QUOTE));
        ASSERT_EQ(f.state, ST(TPM_QUOTE_WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(QUOTE_READY)), A(SEND_QUOTE));
        ASSERT_EQ(f.state, ST(ATTEST_WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(ATTEST_SUCCESS)), A(EXCHANGE_ESCROW));
        ASSERT_EQ(f.state, ST(TPM_ESCROW_WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(ESCROW_READY)), A(SEND_STORE_KEYS));
        ASSERT_EQ(f.state, ST(ATTEST_ESCROW_WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(STORE_OK)), A(DONE));
        ASSERT_EQ(f.state, ST(COMPLETE));
        ASSERT_EQ(f.successes, 1);
        ASSERT_EQ(f.failures, 0);

        /* Periodic re-attestation or Restart: a new round without CERT (accepted already). */
        ASSERT_EQ(attest_fsm_step(&f, EV(TIMER)), A(SEND_NONCE));
        ASSERT_EQ(f.attempts, 2);
        ASSERT_EQ(attest_fsm_step(&f, EV(NONCE_OK)), A(QUOTE));
        ASSERT_EQ(attest_fsm_step(&f, EV(QUOTE_READY)), A(SEND_QUOTE));
        ASSERT_EQ(attest_fsm_step(&f, EV(ATTEST_SUCCESS)), A(EXCHANGE_ESCROW));
        /* No vaultd: attested all the same. */
        ASSERT_EQ(attest_fsm_step(&f, EV(ESCROW_NONE)), A(DONE));
        ASSERT_EQ(f.state, ST(COMPLETE));
        ASSERT_EQ(attest_fsm_step(&f, EV(RESTART)), A(SEND_NONCE));
        ASSERT_EQ(f.attempts, 3);
}

/* Every pair: a valid state and action; an ignored event changes nothing at all. */
TEST(every_pair_is_defined) {
        unsigned ignored = 0, handled = 0;

        for (int s = 0; s < _ATTEST_STATE_MAX; s++)
                for (int e = 0; e < _ATTEST_EVENT_MAX; e++)
                        for (int certs = 0; certs < 2; certs++)
                                for (unsigned attempts = 0; attempts < 2; attempts++) {
                                        AttestFsm f = { .state = s,
                                                        .certs_accepted = certs,
                                                        .attempts = attempts,
                                                        .failures = 3 };
                                        AttestFsm before = f;
                                        AttestAction a = attest_fsm_step(&f, e);

                                        ASSERT_TRUE(a >= 0 && a < _ATTEST_ACTION_MAX);
                                        ASSERT_TRUE(f.state >= 0 && f.state < _ATTEST_STATE_MAX);
                                        if (a == A(IGNORE) || a == A(WAIT)) {
                                                ignored++;
                                                ASSERT_TRUE(memcmp(&f, &before, sizeof f) == 0);
                                        } else
                                                handled++;
                                        /* Only a round's start counts an attempt. */
                                        bool starts = (e == EV(START) || e == EV(RESTART) ||
                                                       e == EV(TIMER)) &&
                                                        (a == A(SEND_CERT) || a == A(SEND_NONCE));
                                        ASSERT_EQ(f.attempts, before.attempts + (starts ? 1 : 0));
                                }
        ASSERT_GE(handled, 20);
        ASSERT_GE(ignored, 100);
        /* Out of range: ignored, not a crash. */
        {
                AttestFsm f = { .state = _ATTEST_STATE_MAX };
                ASSERT_EQ(attest_fsm_step(&f, EV(START)), A(IGNORE));
                f.state = ST(COMPLETE);
                ASSERT_EQ(attest_fsm_step(&f, _ATTEST_EVENT_MAX), A(IGNORE));
                ASSERT_EQ(attest_fsm_step(&f, (AttestEvent) -1), A(IGNORE));
        }
}

TEST(restart_during_a_round_waits) {
        AttestFsm f = ATTEST_FSM_INIT;

        ASSERT_EQ(attest_fsm_step(&f, EV(START)), A(SEND_CERT));
        /* A second start or a restart while CERT is in flight: nothing new. */
        ASSERT_EQ(attest_fsm_step(&f, EV(START)), A(WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(RESTART)), A(WAIT));
        ASSERT_EQ(f.attempts, 1);
        ASSERT_EQ(attest_fsm_step(&f, EV(CERT_OK)), A(SEND_NONCE));
        ASSERT_EQ(attest_fsm_step(&f, EV(RESTART)), A(WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(NONCE_OK)), A(QUOTE));
        ASSERT_EQ(attest_fsm_step(&f, EV(RESTART)), A(WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(QUOTE_READY)), A(SEND_QUOTE));
        ASSERT_EQ(f.state, ST(ATTEST_WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(RESTART)), A(WAIT));
        ASSERT_EQ(f.attempts, 1);
        /* A timer that fires late (the round restarted meanwhile) is ignored. */
        ASSERT_EQ(attest_fsm_step(&f, EV(TIMER)), A(IGNORE));
        ASSERT_EQ(attest_fsm_step(&f, EV(ATTEST_SUCCESS)), A(EXCHANGE_ESCROW));
        ASSERT_EQ(attest_fsm_step(&f, EV(RESTART)), A(WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(ESCROW_READY)), A(SEND_STORE_KEYS));
        ASSERT_EQ(attest_fsm_step(&f, EV(RESTART)), A(WAIT));
        ASSERT_EQ(attest_fsm_step(&f, EV(STORE_OK)), A(DONE));
        ASSERT_EQ(f.attempts, 1);
}

TEST(refusals_retry_and_no_cert_resends) {
        AttestFsm f = ATTEST_FSM_INIT;

        ASSERT_EQ(attest_fsm_step(&f, EV(START)), A(SEND_CERT));
        ASSERT_EQ(attest_fsm_step(&f, EV(CERT_FAILED)), A(RETRY));
        ASSERT_EQ(f.state, ST(RESTART_WAIT));
        ASSERT_EQ(f.failures, 1);
        ASSERT_EQ(attest_fsm_step(&f, EV(TIMER)), A(SEND_CERT)); /* not accepted yet: CERT again */
        ASSERT_EQ(attest_fsm_step(&f, EV(CERT_OK)), A(SEND_NONCE));
        ASSERT_EQ(attest_fsm_step(&f, EV(NONCE_FAILED)), A(RETRY));
        ASSERT_EQ(f.failures, 2);
        ASSERT_EQ(attest_fsm_step(&f, EV(TIMER)), A(SEND_NONCE));

        static const AttestEvent refusals[] = { EV(NONCE_MISMATCH), EV(QUOTE_FAILED), EV(ATTEST_FAILED) };
        for (size_t i = 0; i < ELEMENTSOF(refusals); i++) {
                ASSERT_EQ(attest_fsm_step(&f, EV(NONCE_OK)), A(QUOTE));
                ASSERT_EQ(attest_fsm_step(&f, EV(QUOTE_READY)), A(SEND_QUOTE));
                ASSERT_EQ(attest_fsm_step(&f, refusals[i]), A(RETRY));
                ASSERT_EQ(f.state, ST(RESTART_WAIT));
                ASSERT_EQ(attest_fsm_step(&f, EV(TIMER)), A(SEND_NONCE));
        }
        ASSERT_EQ(f.failures, 5);

        /* NO_CERT_FOUND: the next round sends the certificates first. */
        ASSERT_EQ(attest_fsm_step(&f, EV(NONCE_OK)), A(QUOTE));
        ASSERT_EQ(attest_fsm_step(&f, EV(QUOTE_READY)), A(SEND_QUOTE));
        ASSERT_EQ(attest_fsm_step(&f, EV(NO_CERT_FOUND)), A(RETRY));
        ASSERT_FALSE(f.certs_accepted);
        ASSERT_EQ(attest_fsm_step(&f, EV(RESTART)), A(SEND_CERT));

        /* The TPM failing, STORE_KEYS refused: retried too. A success resets the failures. */
        ASSERT_EQ(attest_fsm_step(&f, EV(CERT_OK)), A(SEND_NONCE));
        ASSERT_EQ(attest_fsm_step(&f, EV(NONCE_OK)), A(QUOTE));
        ASSERT_EQ(attest_fsm_step(&f, EV(QUOTE_ERROR)), A(RETRY));
        ASSERT_EQ(attest_fsm_step(&f, EV(TIMER)), A(SEND_NONCE));
        ASSERT_EQ(attest_fsm_step(&f, EV(NONCE_OK)), A(QUOTE));
        ASSERT_EQ(attest_fsm_step(&f, EV(QUOTE_READY)), A(SEND_QUOTE));
        ASSERT_EQ(attest_fsm_step(&f, EV(ATTEST_SUCCESS)), A(EXCHANGE_ESCROW));
        ASSERT_EQ(f.failures, 0);
        ASSERT_EQ(attest_fsm_step(&f, EV(ESCROW_READY)), A(SEND_STORE_KEYS));
        ASSERT_EQ(attest_fsm_step(&f, EV(STORE_ITOKEN)), A(RETRY));
        ASSERT_EQ(f.failures, 1);
}

TEST(retry_delay_backoff_cap_and_jitter) {
        const uint64_t base = 100000, max = 1600000;
        AttestFsm f = ATTEST_FSM_INIT;
        uint64_t prev_hi = 0;

        for (f.failures = 1; f.failures < 40; f.failures++) {
                uint64_t d = base;
                for (unsigned i = 1; i < f.failures && d < max; i++)
                        d *= 2;
                d = MIN(d, max);
                uint64_t lo = attest_fsm_retry_delay(&f, base, max, 0);
                uint64_t hi = attest_fsm_retry_delay(&f, base, max, UINT32_MAX);
                ASSERT_EQ(lo, d / 2);
                ASSERT_LE(hi, d);
                ASSERT_GE(hi, d / 2);
                ASSERT_GE(hi, prev_hi);
                for (uint32_t r = 1; r < 2000000000U; r += 123456789U) {
                        uint64_t x = attest_fsm_retry_delay(&f, base, max, r);
                        ASSERT_GE(x, d / 2);
                        ASSERT_LE(x, d);
                }
                prev_hi = hi;
        }
        /* Capped: never above max, whatever the failure count. */
        f.failures = UINT32_MAX;
        ASSERT_LE(attest_fsm_retry_delay(&f, base, max, UINT32_MAX), max);
        /* Doubling: the upper bound of the 3rd retry is 4× the first. */
        f.failures = 1;
        ASSERT_EQ(attest_fsm_retry_delay(&f, base, max, 0), base / 2);
        f.failures = 3;
        ASSERT_EQ(attest_fsm_retry_delay(&f, base, max, 0), 2 * base);
}

DEFINE_TEST_MAIN
