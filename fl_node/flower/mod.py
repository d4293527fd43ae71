"""A Flower ClientApp mod: the data owner's on-chain gate before fit, the attestation after.

Put `ledger_gate_mod` in a ClientApp's `mods`; it wraps every `train` message:

1. Before the wrapped ClientApp sees the message, the mod reads the chain through the
   node's own connection (`fl_node.gate.check_round`): the deed must be held by the node's
   account (or the EIP-1271 wallet named by the node config's `owner-wallet`, accepting
   the node's key), the job's coordinator must hold a valid grant for this node's dataset
   and the job's purpose, the dataset must be one of the job's and not retired, the model
   Flower delivered must hash to the job's last committed digest, and the spec sent must
   hash to the job's on-chain spec digest. Otherwise the node answers with a refusal (a
   `FitRes` whose status is not OK, carrying the reason code) and the ClientApp never
   runs: nothing is trained.
2. After the ClientApp trained, the mod serialises the returned weights exactly as the
   coordinator will (`ledger.modelfile.model_to_bytes`), and signs the EIP-712 attestation
   `(jobId, round, datasetId, baseDigest, specDigest, updateDigest, numExamples)` with the
   node's key; it travels in the reply's metrics.

A `train` message that does not come from a ledger strategy is refused too: a node that
holds governed data trains only for a job the chain knows. Before training, the node
prepares its own file with the job's preprocessing spec (part of the digest it just
checked); a file that does not fit the job is refused (`data_mismatch`).

Every decision (trained, with the update digest and example count, or refused, with the
reason) is appended as one JSON line to the node's decisions file (`NodeSite.decisions_file`),
which `sov node status` reads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_utils.address import is_hex_address
from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitIns, FitRes, MessageType, Parameters, Status, parameters_to_ndarrays
from flwr.compat.common.recorddict_compat import (
    fitres_to_recorddict,
    recorddict_to_fitins,
    recorddict_to_fitres,
)
from pydantic import ValidationError

from ledger.errors import LedgerError
from ledger.modelfile import ModelBytesError, model_to_bytes
from ledger.provenance import Attestation, model_digest, sign_attestation, to_checksum_address

from .. import gate
from ..data import DatasetError
from ..errors import FLError, RoundRefusedError
from . import wire
from .node_site import DECISIONS_FILE, NodeConfigError, NodeSite

log = logging.getLogger(__name__)


def refusal_reply(message: Message, dataset_id: int | None, reason: str, text: str) -> Message:
    """A `train` reply that declines the round with a reason code and a sentence.

    Flower's legacy status codes have no "refused"; FIT_NOT_IMPLEMENTED is its only non-OK
    code for fit, so the strategy sees the reply among the round's failures, where
    `reason` and `text` travel in the metrics and the status message.
    """
    fit_res = FitRes(
        status=Status(code=Code.FIT_NOT_IMPLEMENTED, message=f"refused ({reason}): {text}"),
        parameters=Parameters(tensors=[], tensor_type="numpy.ndarray"),
        num_examples=0,
        metrics=dict(wire.refusal_metrics(dataset_id, reason, text)),
    )
    return Message(fitres_to_recorddict(fit_res, keep_input=False), reply_to=message)


def record_decision(path: Path | None, decision: Mapping[str, Any]) -> None:
    """Appends one decision to the node's JSON-lines log (never fails the round: a log is not a gate)."""
    if path is None:
        return
    entry = {"time": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"), **decision}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log_file:
            log_file.write(json.dumps(entry, sort_keys=True) + "\n")
    except OSError as error:
        log.warning("cannot write the node's decision to %s: %s", path, error)


def _decisions_path(node_config: Mapping[str, object], site: NodeSite | None) -> Path | None:
    if site is not None:
        return site.decisions_file
    home = node_config.get("sov-home")
    return Path(home) / DECISIONS_FILE if isinstance(home, str) and home else None


class _Decision:
    """What the node decides for one `train` message; written to its decisions file once."""

    def __init__(self, node_config: Mapping[str, object], facts: dict[str, Any]) -> None:
        self.node_config = node_config
        self.facts = facts
        self.site: NodeSite | None = None

    def refuse(self, message: Message, dataset_id: int | None, reason: str, text: str) -> Message:
        self.facts.update(dataset_id=_hex(dataset_id), decision="refused", reason=reason, message=text)
        return refusal_reply(message, dataset_id, reason, text)

    def write(self) -> None:
        record_decision(_decisions_path(self.node_config, self.site), self.facts)


def ledger_gate_mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Gate a `train` message on-chain, run the ClientApp, attest its update; log the decision."""
    if message.metadata.message_type != MessageType.TRAIN or message.has_error():
        return call_next(message, context)
    fit_ins = recorddict_to_fitins(message.content, keep_input=True)
    decision = _Decision(
        context.node_config,
        {
            "job_id": fit_ins.config.get(wire.JOB_ID),
            "round": fit_ins.config.get(wire.ROUND),
            "decision": "failed",
        },
    )
    try:
        return _gated(message, context, call_next, fit_ins, decision)
    finally:
        decision.write()


def _gated(
    message: Message, context: Context, call_next: ClientAppCallable, fit_ins: FitIns, decision: _Decision
) -> Message:
    dataset_id: int | None = None
    refusal_reply = decision.refuse
    try:
        site = decision.site = NodeSite.from_node_config(context.node_config)
        dataset_id = site.dataset_id
        decision.facts["dataset_id"] = _hex(dataset_id)
        if not wire.is_ledger_round(fit_ins.config):
            return refusal_reply(
                message, dataset_id, "no_job", "this node trains only for a ledger job (no job id was sent)"
            )
        instructions = wire.RoundInstructions.from_config(fit_ins.config)
        spec = instructions.spec
        # The node hashes the model it was actually sent: a coordinator cannot pass off
        # other weights as the committed model.
        base_state = wire.ndarrays_to_state(spec, parameters_to_ndarrays(fit_ins.parameters))
        base_digest = model_digest(model_to_bytes(base_state))
        spec_digest = spec.spec_digest()
        admitted = gate.check_round(
            site.client,
            dataset_id=dataset_id,
            job_id=instructions.job_id,
            job_datasets=instructions.job_datasets,
            base_digest=base_digest,
            spec_digest=spec_digest,
            node_key=site.account,
            owner_wallet=_owner_wallet(context.node_config),
        )
        if admitted.grant.terms.epsilon > 0:
            # The Flower ClientApp trains with plain SGD: it must not spend a privacy budget it
            # cannot account for. Refusing keeps the owner's bound; the embedded runner has DP-SGD.
            return refusal_reply(
                message,
                dataset_id,
                "dp_not_supported",
                f"the grant of dataset {_hex(dataset_id)} sets a privacy budget (epsilon "
                f"{admitted.grant.terms.epsilon:g}); this Flower node does not train with DP-SGD, "
                "so it refuses",
            )
        decision.facts["spec_digest"] = "0x" + spec_digest.hex()
        decision.facts["preprocessing"] = (
            None if spec.preprocessing is None else spec.preprocessing.describe()
        )
        try:
            site.examples(spec.preprocessing)  # prepared once here; the ClientApp reuses them
        except DatasetError as error:
            return refusal_reply(message, dataset_id, "data_mismatch", str(error))
    except RoundRefusedError as refusal:
        log.warning("dataset %s refuses the round: %s", _hex(dataset_id), refusal)
        return refusal_reply(message, dataset_id, refusal.reason, str(refusal))
    except NodeConfigError as error:
        return refusal_reply(message, dataset_id, "node_misconfigured", str(error))
    except (wire.WireError, ValidationError, FLError, ModelBytesError) as error:
        return refusal_reply(message, dataset_id, "bad_instructions", str(error))
    except LedgerError as error:
        # No answer from the chain is no permission: refuse rather than train blind.
        return refusal_reply(message, dataset_id, "ledger_unavailable", str(error))

    reply = call_next(message, context)
    if reply.has_error():
        decision.facts["message"] = f"the ClientApp failed: {reply.error.reason}"
        return reply
    fit_res = recorddict_to_fitres(reply.content, keep_input=True)
    if fit_res.status.code != Code.OK:
        decision.facts["message"] = f"the ClientApp did not train: {fit_res.status.message}"
        return reply
    try:
        update_state = wire.ndarrays_to_state(spec, parameters_to_ndarrays(fit_res.parameters))
    except wire.WireError as error:
        return refusal_reply(message, dataset_id, "training_failed", f"the ClientApp returned {error}")
    attestation = Attestation(
        job_id=instructions.job_id,
        round=instructions.round_number,
        dataset_id=dataset_id,
        base_digest=base_digest,
        spec_digest=spec_digest,
        update_digest=model_digest(model_to_bytes(update_state)),
        num_examples=int(fit_res.num_examples),
    )
    # The ignore: provenance's `_Signer` protocol types `unsafe_sign_hash(bytes)`, eth-account's
    # LocalAccount declares `Hash32`; the call is the one provenance documents.
    signed = sign_attestation(
        site.account,
        site.client.chain_id,
        site.client.deployment.address("TrainingLedger"),
        attestation,
    )
    metrics = reply.content.config_records["fitres.metrics"]
    for key, value in wire.attestation_to_metrics(signed).items():
        metrics[key] = value
    decision.facts.update(
        decision="trained",
        update_digest="0x" + attestation.update_digest.hex(),
        num_examples=attestation.num_examples,
        base_digest="0x" + base_digest.hex(),
    )
    return reply


def _owner_wallet(node_config: Mapping[str, object]) -> str | None:
    """The node config's `owner-wallet`: the EIP-1271 wallet holding the deed, if not the node's key."""
    value = node_config.get("owner-wallet")
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not is_hex_address(value):
        raise NodeConfigError(f"node config 'owner-wallet' must be a 20-byte hex address; got {value!r}")
    return to_checksum_address(value)


def _hex(dataset_id: int | None) -> str:
    return "?" if dataset_id is None else f"0x{dataset_id:064x}"
