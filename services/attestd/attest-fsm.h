/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* attest-fsm.h: the attestation state machine of eve-attestd, pure (no I/O): states numbered as EVE's
 * AttestationState (info.proto, the pillar FSM), the events the daemon feeds it, and for every (state,
 * event) pair the next state and the one action the daemon must take. Pairs the exchange does not expect
 * leave the state alone with ATTEST_ACTION_IGNORE (the daemon logs them), never an abort. Retry delays:
 * exponential backoff with jitter, capped. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef enum AttestState {
        ATTEST_STATE_UNSPECIFIED,        /* 0: idle, or sending the certificates (CERT) */
        ATTEST_STATE_NONCE_WAIT,         /* 1: NONCE request in flight */
        ATTEST_STATE_TPM_QUOTE_WAIT,     /* 2: the TPM is quoting */
        ATTEST_STATE_TPM_ESCROW_WAIT,    /* 3: keys handed to eve-vaultd, waiting for its escrow entries */
        ATTEST_STATE_ATTEST_WAIT,        /* 4: QUOTE request in flight */
        ATTEST_STATE_ATTEST_ESCROW_WAIT, /* 5: STORE_KEYS request in flight */
        ATTEST_STATE_RESTART_WAIT,       /* 6: waiting for the retry timer */
        ATTEST_STATE_COMPLETE,           /* 7: attested; token held */
        _ATTEST_STATE_MAX,
        _ATTEST_STATE_INVALID = -EINVAL,
} AttestState;

typedef enum AttestEvent {
        ATTEST_EVENT_START,        /* daemon start */
        ATTEST_EVENT_RESTART,      /* org.eve.Attest.Restart() (configd on a config 403, an administrator) */
        ATTEST_EVENT_TIMER,        /* the retry timer or the periodic re-attestation timer fired */
        ATTEST_EVENT_CERT_OK,      /* CERT accepted */
        ATTEST_EVENT_CERT_FAILED,  /* CERT refused or not delivered */
        ATTEST_EVENT_NONCE_OK,     /* NONCE answered with a nonce */
        ATTEST_EVENT_NONCE_FAILED, /* NONCE not answered usably */
        ATTEST_EVENT_QUOTE_READY,  /* the TPM quoted */
        ATTEST_EVENT_QUOTE_ERROR,  /* the TPM could not quote */
        ATTEST_EVENT_ATTEST_SUCCESS, /* QUOTE answered SUCCESS (token, keys) */
        ATTEST_EVENT_NONCE_MISMATCH, /* QUOTE answered NONCE_MISMATCH */
        ATTEST_EVENT_QUOTE_FAILED,   /* QUOTE answered QUOTE_FAILED */
        ATTEST_EVENT_NO_CERT_FOUND,  /* QUOTE answered NO_CERT_FOUND */
        ATTEST_EVENT_ATTEST_FAILED,  /* QUOTE not delivered or not answered usably */
        ATTEST_EVENT_ESCROW_READY,   /* eve-vaultd gave its escrow entries */
        ATTEST_EVENT_ESCROW_NONE,    /* no escrow to upload (no vaultd on the bus, or nothing to escrow) */
        ATTEST_EVENT_STORE_OK,       /* STORE_KEYS answered SUCCESS */
        ATTEST_EVENT_STORE_ITOKEN,   /* STORE_KEYS answered ITOKEN_MISMATCH */
        ATTEST_EVENT_STORE_FAILED,   /* STORE_KEYS not delivered or not answered usably */
        _ATTEST_EVENT_MAX,
        _ATTEST_EVENT_INVALID = -EINVAL,
} AttestEvent;

typedef enum AttestAction {
        ATTEST_ACTION_IGNORE,          /* unexpected here: log, change nothing */
        ATTEST_ACTION_SEND_CERT,       /* POST CERT */
        ATTEST_ACTION_SEND_NONCE,      /* POST NONCE */
        ATTEST_ACTION_QUOTE,           /* TPM quote with the nonce */
        ATTEST_ACTION_SEND_QUOTE,      /* POST QUOTE */
        ATTEST_ACTION_EXCHANGE_ESCROW, /* SubmitKeys to eve-vaultd, then GetEscrowKeys */
        ATTEST_ACTION_SEND_STORE_KEYS, /* POST STORE_KEYS */
        ATTEST_ACTION_RETRY,           /* arm the retry timer with attest_fsm_retry_delay() */
        ATTEST_ACTION_DONE,            /* arm the periodic re-attestation timer, if configured */
        ATTEST_ACTION_WAIT, /* nothing to do now: a round is in flight, its result will be fresh */
        _ATTEST_ACTION_MAX,
        _ATTEST_ACTION_INVALID = -EINVAL,
} AttestAction;

typedef struct AttestFsm {
        AttestState state;
        bool certs_accepted; /* CERT went through in this daemon's life (resent after NO_CERT_FOUND) */
        unsigned attempts; /* rounds started (a round = NONCE … up to its outcome; CERT counts with it) */
        unsigned failures; /* consecutive failed rounds: drives the backoff; 0 after a success */
        unsigned successes;
} AttestFsm;

#define ATTEST_FSM_INIT ((AttestFsm){ .state = ATTEST_STATE_UNSPECIFIED })

const char *attest_state_to_string(AttestState s);
const char *attest_event_to_string(AttestEvent e);
const char *attest_action_to_string(AttestAction a);

/* Feeds one event; updates the state and counters and returns the action to take. */
AttestAction attest_fsm_step(AttestFsm *f, AttestEvent e);

/* The next retry delay after f->failures consecutive failures: base·2^(failures−1) capped at max, then a
 * uniformly random value in [d/2, d] from random_u32 (jitter, so that a fleet does not retry in step). base
 * and max in µs; max ≥ base > 0. */
uint64_t attest_fsm_retry_delay(const AttestFsm *f, uint64_t base, uint64_t max, uint32_t random_u32);
