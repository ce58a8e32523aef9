"""``medledger interop``: the integration gateway's commands.

Each area registers its own sub-commands here (``register_*`` functions of the
``interop_*_cmds`` modules), so this module only assembles the group.
"""

from __future__ import annotations

import typer

interop_app = typer.Typer(
    help="Integration gateway: HL7 v2 over MLLP, reconciliation, worklist, deliveries, "
    "dictionaries and mappings, specimen barcodes.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add the ``interop`` group, with every area's commands, to ``app``."""
    from medledger.cli import image_cmds, interop_dict_cmds, interop_gateway_cmds

    interop_gateway_cmds.register(interop_app)
    interop_dict_cmds.register(interop_app)
    image_cmds.register(interop_app)
    app.add_typer(interop_app, name="interop")
