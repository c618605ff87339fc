"""What every emulated AWS service has: a botocore model, its protocol, and handlers.

A service is a class whose methods are named after the operations they
implement (``CreateTrainingJob``), take ``(ctx, params)`` with ``params`` the
parsed input shape as a dict, and return a dict of the output shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol.models import service_model
from ..protocol.protocols import Protocol, protocol_for

if TYPE_CHECKING:
    from ..app import Emulator


class Service:
    name: str = ""
    #: whether the gateway checks model constraints (patterns, enums, lengths) before the handler
    validates: bool = True

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.model = service_model(self.name)
        self.protocol: Protocol = protocol_for(self.model)
