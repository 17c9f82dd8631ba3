"""instance process identity: pid, process start time and PID namespace

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("process_started", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("pid_namespace", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("pid_namespace")
        batch_op.drop_column("process_started")
        batch_op.drop_column("pid")
