"""`sov grant issue|revoke|renounce|check|list|sign|redeem|cancel-signatures`: purpose-scoped usage rights."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import parse
from .chain import open_client
from .common import AccountOption, JsonFlag, console, emit_json, emit_table, settings, user_errors

if TYPE_CHECKING:
    from ledger.chain.types import GrantTerms

app = typer.Typer(
    help="Usage grants: issue, revoke, check, list, and off-chain signed grants.", no_args_is_help=True
)

# The vocabulary of ledger.purposes, spelled out so that `--help` needs no keccak (a test keeps
# the two equal).
PURPOSE_NAMES = ("ai-training", "ai-inference", "data-mining", "analytics")

DatasetArg = Annotated[str, typer.Argument(help="dataset id, 0x content root or CID")]
GranteeArg = Annotated[str, typer.Argument(help="the grantee's address (the research lab)")]
PurposeOption = Annotated[
    str, typer.Option("--purpose", "-p", help=f"one of {', '.join(PURPOSE_NAMES)} (or 0x bytes32)")
]
NotBefore = Annotated[str, typer.Option(help="start: now, a duration from now (2h), ISO date or unix time")]
ExpiresAt = Annotated[
    str, typer.Option("--expires", help="end (inclusive): a duration from now (30d), ISO date or unix time")
]
# Grant terms (0 = none). The chain stores epsilon in hundredths and delta as 10^-k.
EpsilonOption = Annotated[
    float,
    typer.Option(
        "--epsilon", help="DP budget epsilon for this grantee, up to two decimals (0 = DP not required)"
    ),
]
DeltaOption = Annotated[
    float, typer.Option("--delta", help="DP delta, a power of ten such as 1e-5 (0 with --epsilon 0)")
]
MinParticipantsOption = Annotated[
    int, typer.Option("--min-participants", help="a round must have at least this many datasets (0 = any)")
]
MaxRoundsOption = Annotated[
    int, typer.Option("--max-rounds", help="a job may use the grant in rounds 1 to N only (0 = no limit)")
]


def _terms(epsilon: float, delta: float, min_participants: int, max_rounds: int) -> GrantTerms:
    """The terms of the flags (raises GrantTermsError naming the value and what is valid)."""
    from ledger.chain.types import GrantTerms

    return GrantTerms(epsilon, delta, min_participants, max_rounds)


def _budget(
    home: Path, chain_id: int, dataset_id: int, grantee: str, purpose: bytes, terms: GrantTerms
) -> dict[str, Any] | None:
    """The DP budget spent and left by this machine's budget ledger (the owner's node records
    every round it served in `$SOV_HOME/privacy`), or None when the grant has no budget or this
    installation has no budget ledger."""
    if not terms.requires_dp:
        return None
    try:
        from fl_node.privacy import BudgetLedger
    except ImportError:
        return None
    ledger = BudgetLedger(home)
    rounds = len(ledger.history(chain_id, dataset_id, grantee, purpose))
    # No recorded round: nothing spent, and no need to load the accountant (and torch).
    spent = ledger.spent(chain_id, dataset_id, grantee, purpose, terms.delta) if rounds else 0.0
    return {
        "epsilon_spent": spent,
        "epsilon_left": max(0.0, terms.epsilon - spent),
        "rounds_recorded": rounds,
        "source": str(ledger.directory),
    }


def describe_terms(terms: GrantTerms) -> str:
    """One line: `epsilon 3, delta 1e-05, at least 3 participants per round, rounds 1 to 50`."""
    if terms.is_empty:
        return "no terms"
    dp = f"epsilon {terms.epsilon:g}, delta {terms.delta:g}" if terms.requires_dp else "DP not required"
    parts = [dp]
    if terms.min_participants:
        parts.append(f"at least {terms.min_participants} participants per round")
    parts.append(f"rounds 1 to {terms.max_rounds}" if terms.max_rounds else "no round limit")
    return ", ".join(parts)


def terms_cell(terms: GrantTerms | None) -> str:
    """The terms in a table cell: `eps 3, delta 1e-05, min 3/round, max 50 rounds`, or `none`."""
    if terms is None:
        return "unknown"  # an index row written before terms were recorded
    if terms.is_empty:
        return "none"
    parts = [f"eps {terms.epsilon:g}, delta {terms.delta:g}"] if terms.requires_dp else []
    if terms.min_participants:
        parts.append(f"min {terms.min_participants}/round")
    if terms.max_rounds:
        parts.append(f"max {terms.max_rounds} rounds")
    return ", ".join(parts)


@app.command()
@user_errors
def issue(
    dataset: DatasetArg,
    grantee: GranteeArg,
    purpose: PurposeOption = "ai-training",
    not_before: NotBefore = "now",
    expires: ExpiresAt = "30d",
    epsilon: EpsilonOption = 0.0,
    delta: DeltaOption = 0.0,
    min_participants: MinParticipantsOption = 0,
    max_rounds: MaxRoundsOption = 0,
    account: AccountOption = "dev1",
    json: JsonFlag = False,
) -> None:
    """Grant `grantee` use of a dataset for a purpose, inside a time window, with optional terms
    (a DP budget, a minimum of participants per round, a maximum of rounds). Owner or operator."""
    from ledger.purposes import purpose_id, purpose_name

    client = open_client(settings(), account)
    now = client.latest_block().timestamp
    dataset_id, who, purpose_bytes = (
        parse.dataset_id(dataset),
        parse.address(grantee, "grantee"),
        purpose_id(purpose),
    )
    start, end = parse.moment(not_before, now), parse.moment(expires, now)
    terms = _terms(epsilon, delta, min_participants, max_rounds)
    receipt = client.issue_grant(dataset_id, who, purpose_bytes, start, end, terms)
    document = {
        "dataset_id": str(dataset_id),
        "grantee": who,
        "purpose": purpose_name(purpose_bytes),
        "not_before": start,
        "expires_at": end,
        "terms": terms.as_dict(),
        "tx_hash": receipt.tx_hash,
        "block_number": receipt.block_number,
    }
    if json:
        emit_json(document)
    else:
        console.print(
            f"granted {who} '{purpose_name(purpose_bytes)}' on {dataset_id:#066x} "
            f"from {parse.iso(start)} to {parse.iso(end)}; {describe_terms(terms)}"
        )


@app.command()
@user_errors
def revoke(
    dataset: DatasetArg,
    grantee: GranteeArg,
    purpose: PurposeOption = "ai-training",
    account: AccountOption = "dev1",
    json: JsonFlag = False,
) -> None:
    """Revoke a grant (owner or operator). Nodes refuse from the next check on."""
    from ledger.purposes import purpose_id, purpose_name

    client = open_client(settings(), account)
    dataset_id, who, purpose_bytes = (
        parse.dataset_id(dataset),
        parse.address(grantee, "grantee"),
        purpose_id(purpose),
    )
    receipt = client.revoke_grant(dataset_id, who, purpose_bytes)
    if json:
        emit_json(
            {
                "dataset_id": str(dataset_id),
                "grantee": who,
                "purpose": purpose_name(purpose_bytes),
                "revoked": True,
                "tx_hash": receipt.tx_hash,
                "block_number": receipt.block_number,
            }
        )
    else:
        console.print(f"revoked {who}'s '{purpose_name(purpose_bytes)}' grant on {dataset_id:#066x}")


@app.command()
@user_errors
def renounce(
    dataset: DatasetArg,
    purpose: PurposeOption = "ai-training",
    account: AccountOption = "dev0",
    json: JsonFlag = False,
) -> None:
    """The grantee gives up its own grant."""
    from ledger.purposes import purpose_id, purpose_name

    client = open_client(settings(), account)
    dataset_id, purpose_bytes = parse.dataset_id(dataset), purpose_id(purpose)
    receipt = client.renounce_grant(dataset_id, purpose_bytes)
    if json:
        emit_json(
            {
                "dataset_id": str(dataset_id),
                "grantee": client.address,
                "renounced": True,
                "tx_hash": receipt.tx_hash,
            }
        )
    else:
        console.print(
            f"{client.address} renounced its '{purpose_name(purpose_bytes)}' grant on {dataset_id:#066x}"
        )


@app.command()
@user_errors
def check(
    dataset: DatasetArg,
    grantee: GranteeArg,
    purpose: PurposeOption = "ai-training",
    json: JsonFlag = False,
) -> None:
    """Is `grantee` authorised now, and under which terms? Exit status 0 when authorised, 1 when not."""
    from ledger.chain.types import AuthorizationStatus
    from ledger.purposes import purpose_id, purpose_name

    client = open_client(settings())
    dataset_id, who, purpose_bytes = (
        parse.dataset_id(dataset),
        parse.address(grantee, "grantee"),
        purpose_id(purpose),
    )
    status = client.authorization_status(dataset_id, who, purpose_bytes)
    grant = client.get_grant(dataset_id, who, purpose_bytes)
    authorized = status is AuthorizationStatus.AUTHORIZED
    budget = (
        _budget(settings().home, client.chain_id, dataset_id, who, purpose_bytes, grant.terms)
        if grant.exists
        else None
    )
    document: dict[str, object] = {
        "authorized": authorized,
        "dataset_id": str(dataset_id),
        "grantee": who,
        "purpose": purpose_name(purpose_bytes),
        "block_number": client.latest_block().number,
    }
    if not authorized:
        document["reason"] = status.name.lower()
    if grant.exists:
        shown: dict[str, object] = {
            "not_before": grant.not_before,
            "expires_at": grant.expires_at,
            "revoked": grant.revoked,
            "terms": grant.terms.as_dict(),
        }
        if budget is not None:
            shown["budget"] = budget
        document["grant"] = shown
    if json:
        emit_json(document)
    elif authorized:
        console.print(
            f"[green]authorized[/] until {parse.iso(grant.expires_at)}; terms: {describe_terms(grant.terms)}"
        )
        if budget is not None:
            console.print(
                f"privacy budget (this machine's ledger, {budget['rounds_recorded']} round(s)): epsilon "
                f"{budget['epsilon_spent']:.4f} spent, {budget['epsilon_left']:.4f} left "
                f"of {grant.terms.epsilon:g}"
            )
    else:
        console.print(f"[red]not authorized[/]: {status.reason}")
    if not authorized:
        raise typer.Exit(code=1)


@app.command("list")
@user_errors
def list_(
    dataset: Annotated[str | None, typer.Option(help="only grants on this dataset")] = None,
    grantee: Annotated[str | None, typer.Option(help="only grants to this address")] = None,
    json: JsonFlag = False,
) -> None:
    """Current grants (from the event index, synced first), with their terms."""
    from ledger.index import EventIndex
    from ledger.purposes import purpose_name

    config = settings()
    client = open_client(config)
    index = EventIndex(config, client)
    index.sync()
    now = client.latest_block().timestamp
    grants = index.grants(
        dataset_id=parse.dataset_id(dataset) if dataset else None,
        grantee=parse.address(grantee, "grantee") if grantee else None,
    )
    rows: list[dict[str, Any]] = [
        {
            "dataset_id": str(g.dataset_id),
            "dataset_id_hex": f"{g.dataset_id:#066x}",
            "grantee": g.grantee,
            "purpose": purpose_name(g.purpose),
            "not_before": g.not_before,
            "expires_at": g.expires_at,
            "revoked": g.revoked,
            "status": g.status_at(now).name.lower(),
            # As `sov grant check` shows them: all zero = no terms; null = not recorded in the index.
            "terms": None if g.terms is None else g.terms.as_dict(),
        }
        for g in grants
    ]
    if json:
        emit_json(rows)
    else:
        emit_table(
            f"{len(rows)} grant(s)",
            ["dataset", "grantee", "purpose", "expires", "status", "terms"],
            [
                [
                    r["dataset_id_hex"][:18] + "...",
                    r["grantee"],
                    r["purpose"],
                    parse.iso(int(r["expires_at"])),
                    r["status"],
                    terms_cell(g.terms),
                ]
                for r, g in zip(rows, grants, strict=True)
            ],
        )


@app.command()
@user_errors
def sign(
    dataset: DatasetArg,
    grantee: GranteeArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the signed grant JSON")],
    purpose: PurposeOption = "ai-training",
    not_before: NotBefore = "now",
    expires: ExpiresAt = "30d",
    deadline: Annotated[str, typer.Option(help="the signature is redeemable until then")] = "7d",
    epsilon: EpsilonOption = 0.0,
    delta: DeltaOption = 0.0,
    min_participants: MinParticipantsOption = 0,
    max_rounds: MaxRoundsOption = 0,
    account: AccountOption = "dev1",
    json: JsonFlag = False,
) -> None:
    """Sign a grant off-chain (EIP-712 `Grant` of UsageGrants version 2, with its terms, as
    eth_signTypedData_v4 JSON); anyone can redeem it."""
    from ledger.purposes import purpose_id
    from ledger.signed_grants import grant_typed_data, sign_grant

    terms = _terms(epsilon, delta, min_participants, max_rounds)
    client = open_client(settings(), account)
    assert client.account is not None and client.address is not None
    now = client.latest_block().timestamp
    typed = grant_typed_data(
        client.chain_id,
        client.deployment.address("UsageGrants"),
        parse.dataset_id(dataset),
        parse.address(grantee, "grantee"),
        purpose_id(purpose),
        parse.moment(not_before, now),
        parse.moment(expires, now),
        client.nonces(client.address),
        parse.moment(deadline, now),
        terms,
    )
    signed = sign_grant(client.account, typed)
    out.write_text(jsonlib.dumps(signed, indent=2) + "\n")
    if json:
        emit_json(
            {
                "file": str(out),
                "signer": client.address,
                "nonce": typed["message"]["nonce"],
                "terms": terms.as_dict(),
            }
        )
    else:
        console.print(
            f"signed grant written to {out} (signer {client.address}, nonce {typed['message']['nonce']}; "
            f"{describe_terms(terms)})"
        )


@app.command()
@user_errors
def redeem(
    file: Annotated[
        Path, typer.Argument(help="a signed grant JSON (from `sov grant sign` or any EIP-712 wallet)")
    ],
    account: AccountOption = "dev0",
    json: JsonFlag = False,
) -> None:
    """Submit a signed grant on-chain; the submitter pays gas, the owner's signature authorises.

    Reads eth_signTypedData_v4 JSON from any wallet (integers as numbers, decimal or 0x-hex
    strings). The owner may be an EOA (65- or 64-byte signature) or a contract wallet such as a
    Safe (EIP-1271, any signature length). Reports the deed owner that authorised the grant.
    A grant signed for UsageGrants version 1 (before grants had terms) is refused: the owner
    signs it again with `sov grant sign`.
    """
    from ledger.purposes import describe_purpose
    from ledger.signed_grants import grant_from_signed

    try:
        document = jsonlib.loads(file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, jsonlib.JSONDecodeError) as error:
        raise ValueError(f"{file} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{file} holds {type(document).__name__}, not a signed grant object")
    grant = grant_from_signed(document)
    client = open_client(settings(), account)
    authority, receipt = client.redeem_signed_grant(grant)
    report: dict[str, Any] = {
        "owner": authority.owner,
        "owner_kind": authority.owner_kind,
        "dataset_id": str(grant.dataset_id),
        "grantee": grant.grantee,
        "purpose": describe_purpose(grant.purpose),
        "not_before": grant.not_before,
        "expires_at": grant.expires_at,
        "terms": grant.terms.as_dict(),
        "nonce": str(grant.nonce),
        "tx_hash": receipt.tx_hash,
        "block_number": receipt.block_number,
    }
    if not authority.owner_is_contract:
        report["signer"] = authority.signer
    if json:
        emit_json(report)
    else:
        kind = "contract wallet (EIP-1271)" if authority.owner_is_contract else "account"
        console.print(
            f"redeemed grant of {grant.dataset_id:#066x} to {grant.grantee}, authorised by owner "
            f"{authority.owner} ({kind}), at block {receipt.block_number}; {describe_terms(grant.terms)}"
        )


@app.command("cancel-signatures")
@user_errors
def cancel_signatures(
    up_to: Annotated[
        int | None,
        typer.Option(
            "--up-to",
            min=0,
            help="cancel every signed grant with a nonce up to this one (default: the account's next nonce)",
        ),
    ] = None,
    account: AccountOption = "dev1",
    json: JsonFlag = False,
) -> None:
    """Cancel this account's signed grants that nobody redeemed yet (moves its nonce past them)."""
    client = open_client(settings(), account)
    assert client.address is not None
    before = client.nonces(client.address)
    next_nonce, receipt = client.invalidate_nonces(up_to)
    if json:
        emit_json(
            {
                "owner": client.address,
                "cancelled_from": str(before),
                "cancelled_to": str(next_nonce - 1),
                "next_nonce": str(next_nonce),
                "tx_hash": receipt.tx_hash,
                "block_number": receipt.block_number,
            }
        )
    else:
        console.print(
            f"cancelled {client.address}'s signed grants with nonces {before} to {next_nonce - 1}; "
            f"the next signature must carry nonce {next_nonce}"
        )
