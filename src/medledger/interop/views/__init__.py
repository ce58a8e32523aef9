"""SQL-view connectors (数据库视图对接): poll HIS/LIS views inbound, expose bridge tables outbound.

Inbound, a connector polls a view such as the member hospital HIS's ``v_jc_sqd`` (检查申请单)
and turns each new row into the neutral model (:mod:`medledger.interop.model`), which the sink
stores. Outbound, :class:`ExposedTables` writes requisitions and results into a bridge
database for systems that read tables (a LIS downloading 送检条码 information).

Configuration (YAML, :func:`load_config`)::

    connectors:
      - name: member-his-requisitions   # unique, [a-z0-9-]+ (also the watermark's name)
        kind: requisitions              # or results
        institution: hosp-member-east   # the sender: owns what is created
        performer: hosp-central         # requisitions only (results: placer_institution)
        url: mysql+pymysql://his_reader:${HIS_DB_PASSWORD}@10.1.2.3:3306/his?charset=utf8mb4
        view: v_jc_sqd                  # schema.view allowed
        watermark: gxsj                 # monotonic column: datetime, date or integer
        watermark_type: datetime        # default datetime
        key: sqdh                       # unique NOT NULL row key: tiebreak among equal watermarks
        group_by: sqdh                  # optional: rows sharing it form one message
        batch: 500                      # rows per poll (1..50000)
        interval: 5s                    # pause between polls when caught up (ms, s, m, h)
        lookback: 60s                   # overlap window for late rows (integer for integer marks)
        columns: {placer: sqmxh, patient.id: brid, item.code: jcxm_dm, ...}  # field <- column
        values: {patient.sex: {"1": male, "2": female, "男": male, "女": female}}
        defaults: {item.kind: radiology} # used when a column is unmapped, NULL or blank
    exposed:                            # optional: the outbound bridge database
      url: postgresql+psycopg://bridge@10.1.2.9:5432/bridge
      expose_patient_name: false        # true puts patient names (PHI) in the bridge database

Only URLs expand ``${ENV_VAR}``, so passwords stay out of the file; a URL's password is never
shown in an error or a log. The model fields and which are required are listed in
:data:`~medledger.interop.views.config.REQUISITION_FIELDS` and ``RESULT_FIELDS``.

Rows and messages. One row is one item: an OrderItem of a Requisition, or one observation
(``obs.*``) of a Result; a results view without ``obs.*`` gives one Result per row. Without
``group_by`` every row is its own message. With ``group_by`` the rows of a batch that share its
value form one Requisition (one Result), the first good row giving the patient and header.
Each item keeps its own ``placer``, unique per sender, so a requisition with several items
maps ``placer`` to the item-level number (申请明细号), not to the 申请单号 it groups by. A
group split across two batches arrives as two messages, each with its own items; receivers
upsert items by placer, so both halves land.

Delivery is at least once: the cursor (watermark, key) is saved only after the sink returned,
and the sink dedupes by business key. A row that cannot be mapped is quarantined (reported,
handed to the sink in the checkpoint for durable storage) and does not block the others.

Late rows. A row committed after the poller passed its watermark (a HIS transaction that set
``gxsj = now()`` and committed seconds later, or a row whose key sorts below the cursor's among
equal watermarks) would be missed by a plain ``watermark > last`` query. The remedy is an
overlap window: every poll re-reads ``watermark ≥ last − lookback`` up to the cursor and
delivers the rows it has not delivered before; the delivered (watermark, key) pairs inside the
window are stored with the cursor, so neither a re-read nor a restart delivers a row twice.
``lookback: 0`` still catches late rows of the cursor's own watermark; set it to the longest
time a source transaction may stay open (60 s is usual) and keep it short, since every poll
re-reads the window.

Watermarks. ``datetime``: a naive value (MySQL ``DATETIME``, PostgreSQL ``timestamp``) is local
time UTC+8; model date-times carry ``+08:00``. ``date``: coarse, the key orders a day's rows;
the lookback rounds up to whole days. ``integer``: e.g. a sequence or ``rowversion``; the
lookback counts units. Rows whose watermark or key is NULL are never read. An updated row
whose watermark moved is read again and delivered as a new message (its control id is
``<key>@<watermark>``). Run one poller per connector.
"""

from __future__ import annotations

from medledger.interop.views.config import (
    ConnectorConfig,
    ExposedConfig,
    ViewsConfig,
    load_config,
    parse_config,
)
from medledger.interop.views.exposed import ExposedTables, view_ddl
from medledger.interop.views.mapping import Quarantined, RowMapper
from medledger.interop.views.poller import Checkpoint, PollReport, ViewPoller, WatermarkStore

__all__ = [
    "Checkpoint",
    "ConnectorConfig",
    "ExposedConfig",
    "ExposedTables",
    "PollReport",
    "Quarantined",
    "RowMapper",
    "ViewPoller",
    "ViewsConfig",
    "WatermarkStore",
    "load_config",
    "parse_config",
    "view_ddl",
]
