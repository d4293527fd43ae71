"""A train message as a SuperNode hands it to a ClientApp, for tests that drive the ledger mod."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
from flwr.app import Message, Metadata
from flwr.app.message.message import make_message
from flwr.common import FitIns, MessageType, ndarrays_to_parameters
from flwr.compat.common.recorddict_compat import fitins_to_recorddict

from fl_node.flower import wire


def train_message(arrays: list[np.ndarray], config: Mapping[str, wire.Scalar]) -> Message:
    """A TRAIN message carrying `arrays` as the base model and `config` as the round's instructions."""
    content = fitins_to_recorddict(FitIns(ndarrays_to_parameters(arrays), dict(config)), keep_input=False)
    metadata = Metadata(
        run_id=1,
        message_id="m1",
        src_node_id=0,
        dst_node_id=1,
        reply_to_message_id="",
        group_id="1",
        created_at=time.time(),
        ttl=600.0,
        message_type=MessageType.TRAIN,
    )
    return make_message(metadata, content)
