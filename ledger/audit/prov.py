"""W3C PROV-JSON rendering of an audit (https://www.w3.org/Submission/prov-json/).

Mapping:
- entities: each model version (initial model and every round's model), each dataset and
  each round manifest;
- activities: the rounds (ended at the round's block time);
- agents: the coordinator (the lab), each dataset owner and each owner's node key (a
  software agent acting on behalf of its owner);
- a round `used` its base model and every participating dataset; a dataset usage carries
  the grant it happened under (purpose, window, status at that block, the tx that issued
  it) and the attestation (signer, example count, update digest) as attributes: PROV's
  qualified usage;
- `wasGeneratedBy` (model and manifest by their round), `wasDerivedFrom` (model k from
  model k-1 and from the datasets), `wasAssociatedWith` (round with coordinator and
  nodes), `wasAttributedTo` (dataset to its owner) and `actedOnBehalfOf` (node for owner).

Every record carries `sov:verified`, whether the audit's checks about it passed. Local
names use only letters, digits, `_`, `-` and `.`, so they are valid PROV-N QNames too.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ledger.purposes import describe_purpose

if TYPE_CHECKING:
    from ledger.audit.privacy import DatasetBudget
    from ledger.audit.report import AuditReport

SOV_NAMESPACE = "https://sovereign-ledger.example/ns/prov#"


def _time(timestamp: int) -> dict[str, str]:
    when = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"$": when, "type": "xsd:dateTime"}


def _qname(value: str) -> dict[str, str]:
    return {"$": value, "type": "prov:QUALIFIED_NAME"}


def _model_id(digest: bytes) -> str:
    return f"sov:model_{digest.hex()}"


def _dataset_id(dataset_id: int) -> str:
    return f"sov:dataset_{dataset_id:064x}"


def _round_id(job_id: int, round_number: int) -> str:
    return f"sov:round_{job_id}_{round_number}"


def _agent_id(kind: str, address: str) -> str:
    return f"sov:{kind}_{address.lower()}"


def report_to_prov(report: AuditReport) -> dict[str, Any]:
    """The PROV-JSON document of `report`'s lineage."""
    lin = report.lineage
    job = lin.job
    # `sov:verified` is true only where every check passed: a check not made counts against it.
    not_passed = [c for c in report.checks if not c.ok]
    failed_rounds = {c.round for c in not_passed if c.round is not None}
    failed_pairs = {(c.round, c.dataset_id) for c in not_passed if c.dataset_id is not None}
    doc: dict[str, Any] = {
        "prefix": {"sov": SOV_NAMESPACE},
        "entity": {},
        "activity": {},
        "agent": {},
        "used": {},
        "wasGeneratedBy": {},
        "wasDerivedFrom": {},
        "wasAssociatedWith": {},
        "wasAttributedTo": {},
        "actedOnBehalfOf": {},
    }
    counter = {"n": 0}

    def relation(kind: str, record: dict[str, Any]) -> None:
        counter["n"] += 1
        doc[kind][f"_:{kind}{counter['n']}"] = record

    coordinator = _agent_id("coordinator", job.coordinator)
    doc["agent"][coordinator] = {
        "prov:type": _qname("prov:Organization"),
        "prov:label": f"coordinator {job.coordinator} (job {job.job_id})",
        "sov:address": job.coordinator,
    }
    initial = _model_id(job.initial_model_digest)
    doc["entity"][initial] = {
        "prov:type": _qname("sov:Model"),
        "prov:label": f"job {job.job_id} initial model",
        "sov:digest": "0x" + job.initial_model_digest.hex(),
        "sov:job": job.job_id,
        "sov:round": 0,
        "sov:verified": True,
    }
    budgets = {b.dataset_id: b for b in report.privacy_budgets()}
    for dataset in lin.datasets.values():
        owner = _agent_id("owner", dataset.owner)
        doc["agent"].setdefault(
            owner,
            {
                "prov:type": _qname("prov:Organization"),
                "prov:label": f"data owner {dataset.owner}",
                "sov:address": dataset.owner,
            },
        )
        entity = _dataset_id(dataset.dataset_id)
        doc["entity"][entity] = {
            "prov:type": _qname("sov:Dataset"),
            "prov:label": dataset.uri or f"dataset 0x{dataset.dataset_id:064x}",
            "sov:datasetId": f"0x{dataset.dataset_id:064x}",
            "sov:registeredBlock": dataset.block_number,
            "sov:retired": dataset.retired,
            **_budget_attributes(budgets.get(dataset.dataset_id)),
            "sov:verified": True,
        }
        relation("wasAttributedTo", {"prov:entity": entity, "prov:agent": owner})

    previous = initial
    for facts in lin.rounds:
        c = facts.committed
        activity = _round_id(job.job_id, c.round)
        ok = c.round not in failed_rounds
        doc["activity"][activity] = {
            "prov:type": _qname("sov:TrainingRound"),
            "prov:label": f"job {job.job_id} round {c.round}",
            "prov:endTime": _time(c.timestamp),
            "sov:block": c.block_number,
            "sov:transaction": c.tx_hash,
            "sov:attestationsRoot": "0x" + c.attestations_root.hex(),
            "sov:verified": ok,
        }
        model = _model_id(c.model_digest)
        doc["entity"][model] = {
            "prov:type": _qname("sov:Model"),
            "prov:label": f"job {job.job_id} round {c.round} model",
            "sov:digest": "0x" + c.model_digest.hex(),
            "sov:job": job.job_id,
            "sov:round": c.round,
            "sov:verified": ok,
            **({"sov:cid": facts.model_cid} if facts.model_cid else {}),
        }
        manifest = f"sov:manifest_{c.manifest_cid}"
        doc["entity"][manifest] = {
            "prov:type": _qname("sov:RoundManifest"),
            "prov:label": f"job {job.job_id} round {c.round} manifest",
            "sov:cid": c.manifest_cid,
            "sov:verified": ok,
        }
        relation(
            "wasGeneratedBy",
            {"prov:entity": model, "prov:activity": activity, "prov:time": _time(c.timestamp)},
        )
        relation(
            "wasGeneratedBy",
            {"prov:entity": manifest, "prov:activity": activity, "prov:time": _time(c.timestamp)},
        )
        relation(
            "used", {"prov:activity": activity, "prov:entity": previous, "prov:role": _qname("sov:baseModel")}
        )
        relation(
            "wasDerivedFrom",
            {
                "prov:generatedEntity": model,
                "prov:usedEntity": previous,
                "prov:activity": activity,
                "prov:type": _qname("prov:Revision"),
            },
        )
        relation(
            "wasAssociatedWith",
            {"prov:activity": activity, "prov:agent": coordinator, "prov:role": _qname("sov:coordinator")},
        )
        for p in facts.participants:
            dataset_entity = _dataset_id(p.dataset_id)
            if dataset_entity not in doc["entity"]:
                doc["entity"][dataset_entity] = {
                    "prov:type": _qname("sov:Dataset"),
                    "prov:label": f"unregistered dataset 0x{p.dataset_id:064x}",
                    "sov:datasetId": f"0x{p.dataset_id:064x}",
                    "sov:verified": False,
                }
            usage_ok = (c.round, p.dataset_id) not in failed_pairs
            usage: dict[str, Any] = {
                "prov:activity": activity,
                "prov:entity": dataset_entity,
                "prov:time": _time(c.timestamp),
                "prov:role": _qname("sov:trainingData"),
                "sov:purpose": describe_purpose(job.purpose),
                "sov:grantee": job.coordinator,
                "sov:verified": usage_ok,
            }
            grant = p.grant
            if grant is not None:
                usage["sov:grantStatus"] = grant.status.name.lower()
                issued = grant.issued
                if issued is not None and issued.not_before is not None and issued.expires_at is not None:
                    usage["sov:grantNotBefore"] = _time(issued.not_before)
                    # xsd:dateTime stops at year 9999; a grant "forever" is shown as that.
                    usage["sov:grantExpiresAt"] = _time(min(issued.expires_at, 253402300799))
                    usage["sov:grantIssuedTx"] = issued.tx_hash
            if p.entry is not None:
                usage["sov:numExamples"] = p.entry.num_examples
                usage["sov:weight"] = p.entry.weight
                usage["sov:updateDigest"] = "0x" + p.entry.update_digest.hex()
                usage["sov:attestationSigner"] = p.recovered_signer or "unrecoverable"
            relation("used", usage)
            relation(
                "wasDerivedFrom",
                {"prov:generatedEntity": model, "prov:usedEntity": dataset_entity, "prov:activity": activity},
            )
            signer = p.recovered_signer or (p.entry.node if p.entry is not None else None)
            if signer is not None:
                node = _agent_id("node", signer)
                doc["agent"].setdefault(
                    node,
                    {
                        "prov:type": _qname("prov:SoftwareAgent"),
                        "prov:label": f"node key {signer}",
                        "sov:address": signer,
                    },
                )
                relation(
                    "wasAssociatedWith",
                    {"prov:activity": activity, "prov:agent": node, "prov:role": _qname("sov:trainer")},
                )
                if p.owner is not None:
                    owner = _agent_id("owner", p.owner)
                    doc["agent"].setdefault(
                        owner,
                        {
                            "prov:type": _qname("prov:Organization"),
                            "prov:label": f"data owner {p.owner}",
                            "sov:address": p.owner,
                        },
                    )
                    relation(
                        "actedOnBehalfOf",
                        {"prov:delegate": node, "prov:responsible": owner, "prov:activity": activity},
                    )
        previous = model
    return {kind: records for kind, records in doc.items() if records}


def _budget_attributes(budget: DatasetBudget | None) -> dict[str, Any]:
    """A dataset's privacy spending in the job (only the values that are known)."""
    if budget is None:
        return {}
    values: dict[str, Any] = {
        "sov:dpRounds": budget.private_rounds,
        "sov:epsilonSpent": budget.epsilon_spent,
        "sov:epsilonRecomputed": budget.epsilon_recomputed,
    }
    if budget.epsilon_budget is not None:
        values["sov:epsilonBudget"] = budget.epsilon_budget
    if budget.delta is not None:
        values["sov:delta"] = budget.delta
    if budget.epsilon_left is not None:
        values["sov:epsilonLeft"] = budget.epsilon_left
    return values
