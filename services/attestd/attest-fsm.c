/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "attest-fsm.h"

static const char *const state_table[_ATTEST_STATE_MAX] = {
        [ATTEST_STATE_UNSPECIFIED] = "idle",
        [ATTEST_STATE_NONCE_WAIT] = "nonce-wait",
        [ATTEST_STATE_TPM_QUOTE_WAIT] = "tpm-quote-wait",
        [ATTEST_STATE_TPM_ESCROW_WAIT] = "tpm-escrow-wait",
        [ATTEST_STATE_ATTEST_WAIT] = "attest-wait",
        [ATTEST_STATE_ATTEST_ESCROW_WAIT] = "attest-escrow-wait",
        [ATTEST_STATE_RESTART_WAIT] = "restart-wait",
        [ATTEST_STATE_COMPLETE] = "complete",
};

static const char *const event_table[_ATTEST_EVENT_MAX] = {
        [ATTEST_EVENT_START] = "start",
        [ATTEST_EVENT_RESTART] = "restart",
        [ATTEST_EVENT_TIMER] = "timer",
        [ATTEST_EVENT_CERT_OK] = "cert-ok",
        [ATTEST_EVENT_CERT_FAILED] = "cert-failed",
        [ATTEST_EVENT_NONCE_OK] = "nonce-ok",
        [ATTEST_EVENT_NONCE_FAILED] = "nonce-failed",
        [ATTEST_EVENT_QUOTE_READY] = "quote-ready",
        [ATTEST_EVENT_QUOTE_ERROR] = "quote-error",
        [ATTEST_EVENT_ATTEST_SUCCESS] = "attest-success",
        [ATTEST_EVENT_NONCE_MISMATCH] = "nonce-mismatch",
        [ATTEST_EVENT_QUOTE_FAILED] = "quote-failed",
        [ATTEST_EVENT_NO_CERT_FOUND] = "no-cert-found",
        [ATTEST_EVENT_ATTEST_FAILED] = "attest-failed",
        [ATTEST_EVENT_ESCROW_READY] = "escrow-ready",
        [ATTEST_EVENT_ESCROW_NONE] = "escrow-none",
        [ATTEST_EVENT_STORE_OK] = "store-ok",
        [ATTEST_EVENT_STORE_ITOKEN] = "store-itoken-mismatch",
        [ATTEST_EVENT_STORE_FAILED] = "store-failed",
};

static const char *const action_table[_ATTEST_ACTION_MAX] = {
        [ATTEST_ACTION_IGNORE] = "ignore",
        [ATTEST_ACTION_SEND_CERT] = "send-cert",
        [ATTEST_ACTION_SEND_NONCE] = "send-nonce",
        [ATTEST_ACTION_QUOTE] = "quote",
        [ATTEST_ACTION_SEND_QUOTE] = "send-quote",
        [ATTEST_ACTION_EXCHANGE_ESCROW] = "exchange-escrow",
        [ATTEST_ACTION_SEND_STORE_KEYS] = "send-store-keys",
        [ATTEST_ACTION_RETRY] = "retry",
        [ATTEST_ACTION_DONE] = "done",
        [ATTEST_ACTION_WAIT] = "wait",
};

const char *attest_state_to_string(AttestState s) {
        return s >= 0 && s < _ATTEST_STATE_MAX ? state_table[s] : NULL;
}

const char *attest_event_to_string(AttestEvent e) {
        return e >= 0 && e < _ATTEST_EVENT_MAX ? event_table[e] : NULL;
}

const char *attest_action_to_string(AttestAction a) {
        return a >= 0 && a < _ATTEST_ACTION_MAX ? action_table[a] : NULL;
}

/* How a (state, event) pair is handled. The zero entry, T_IGNORE, is every pair not listed. */
typedef enum TransitionKind {
        T_IGNORE,        /* unexpected: nothing changes */
        T_BEGIN,         /* start a round: CERT first unless accepted, else NONCE */
        T_BEGIN_IF_IDLE, /* start a round unless one was started already (state 0 is idle and CERT-in-flight)
                          */
        T_WAIT,          /* a round is in flight; its outcome will be fresh */
        T_GOTO,          /* next state, action */
        T_CERTS_OK,      /* CERT accepted: go on with NONCE */
        T_SUCCESS,       /* QUOTE SUCCESS: escrow exchange */
        T_FAIL,          /* the round failed: back off */
        T_NO_CERT,       /* the controller has no certificates of ours: back off, resend them next round */
        T_DONE,          /* the round is over */
} TransitionKind;

typedef struct Transition {
        TransitionKind kind;
        AttestState next;
        AttestAction action;
} Transition;

#define S(x) ATTEST_STATE_##x
#define E(x) ATTEST_EVENT_##x
#define GOTO(s, a) \
        { T_GOTO, ATTEST_STATE_##s, ATTEST_ACTION_##a }
#define K(k) \
        { k, 0, 0 }

static const Transition table[_ATTEST_STATE_MAX][_ATTEST_EVENT_MAX] = {
        [S(UNSPECIFIED)] = {
                [E(START)] = K(T_BEGIN_IF_IDLE),
                [E(RESTART)] = K(T_BEGIN_IF_IDLE),
                [E(CERT_OK)] = K(T_CERTS_OK),
                [E(CERT_FAILED)] = K(T_FAIL),
        },
        [S(NONCE_WAIT)] = {
                [E(RESTART)] = K(T_WAIT),
                [E(NONCE_OK)] = GOTO(TPM_QUOTE_WAIT, QUOTE),
                [E(NONCE_FAILED)] = K(T_FAIL),
        },
        [S(TPM_QUOTE_WAIT)] = {
                [E(RESTART)] = K(T_WAIT),
                [E(QUOTE_READY)] = GOTO(ATTEST_WAIT, SEND_QUOTE),
                [E(QUOTE_ERROR)] = K(T_FAIL),
        },
        [S(ATTEST_WAIT)] = {
                [E(RESTART)] = K(T_WAIT),
                [E(ATTEST_SUCCESS)] = K(T_SUCCESS),
                [E(NONCE_MISMATCH)] = K(T_FAIL),
                [E(QUOTE_FAILED)] = K(T_FAIL),
                [E(NO_CERT_FOUND)] = K(T_NO_CERT),
                [E(ATTEST_FAILED)] = K(T_FAIL),
        },
        [S(TPM_ESCROW_WAIT)] = {
                [E(RESTART)] = K(T_WAIT),
                [E(ESCROW_READY)] = GOTO(ATTEST_ESCROW_WAIT, SEND_STORE_KEYS),
                [E(ESCROW_NONE)] = K(T_DONE),
        },
        [S(ATTEST_ESCROW_WAIT)] = {
                [E(RESTART)] = K(T_WAIT),
                [E(STORE_OK)] = K(T_DONE),
                [E(STORE_ITOKEN)] = K(T_FAIL),
                [E(STORE_FAILED)] = K(T_FAIL),
        },
        [S(RESTART_WAIT)] = {
                [E(TIMER)] = K(T_BEGIN),
                [E(RESTART)] = K(T_BEGIN),
        },
        [S(COMPLETE)] = {
                [E(TIMER)] = K(T_BEGIN),
                [E(RESTART)] = K(T_BEGIN),
        },
};

static AttestAction begin(AttestFsm *f) {
        f->attempts++;
        if (!f->certs_accepted) {
                f->state = ATTEST_STATE_UNSPECIFIED;
                return ATTEST_ACTION_SEND_CERT;
        }
        f->state = ATTEST_STATE_NONCE_WAIT;
        return ATTEST_ACTION_SEND_NONCE;
}

static AttestAction fail(AttestFsm *f) {
        f->failures++;
        f->state = ATTEST_STATE_RESTART_WAIT;
        return ATTEST_ACTION_RETRY;
}

AttestAction attest_fsm_step(AttestFsm *f, AttestEvent e) {
        const Transition *t;

        if (f->state < 0 || f->state >= _ATTEST_STATE_MAX || e < 0 || e >= _ATTEST_EVENT_MAX)
                return ATTEST_ACTION_IGNORE;
        t = &table[f->state][e];
        switch (t->kind) {
        case T_IGNORE:
                return ATTEST_ACTION_IGNORE;
        case T_BEGIN_IF_IDLE:
                if (f->attempts > 0)
                        return ATTEST_ACTION_WAIT;
                return begin(f);
        case T_BEGIN:
                return begin(f);
        case T_WAIT:
                return ATTEST_ACTION_WAIT;
        case T_GOTO:
                f->state = t->next;
                return t->action;
        case T_CERTS_OK:
                f->certs_accepted = true;
                f->state = ATTEST_STATE_NONCE_WAIT;
                return ATTEST_ACTION_SEND_NONCE;
        case T_SUCCESS:
                f->successes++;
                f->failures = 0;
                f->state = ATTEST_STATE_TPM_ESCROW_WAIT;
                return ATTEST_ACTION_EXCHANGE_ESCROW;
        case T_FAIL:
                return fail(f);
        case T_NO_CERT:
                f->certs_accepted = false;
                return fail(f);
        case T_DONE:
                f->failures = 0;
                f->state = ATTEST_STATE_COMPLETE;
                return ATTEST_ACTION_DONE;
        }
        return ATTEST_ACTION_IGNORE;
}

uint64_t attest_fsm_retry_delay(const AttestFsm *f, uint64_t base, uint64_t max, uint32_t random_u32) {
        uint64_t d = base;

        if (base == 0)
                return 0;
        if (max < base)
                max = base;
        for (unsigned i = 1; i < f->failures && d < max; i++)
                d = d > max / 2 ? max : d * 2;
        d = MIN(d, max);
        /* Equal jitter: half fixed, half random. */
        return d / 2 + (uint64_t) random_u32 % (d - d / 2 + 1);
}
