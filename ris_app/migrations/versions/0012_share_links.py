"""second-opinion share links: share_link (hashes of the token and code only)

Revision ID: 0012_share_links
Revises: 0010_audit
Create Date: 2026-11-30 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_share_links"
down_revision = "0010_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "share_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by_id", sa.Integer(), nullable=True),
        sa.Column("include_report", sa.Boolean(), nullable=False),
        sa.Column("failed_code_attempts", sa.Integer(), nullable=False),
        sa.Column("opened_count", sa.Integer(), nullable=False),
        sa.Column("last_opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_share_link_study_id_study")),
        sa.ForeignKeyConstraint(["created_by_id"], ["ris_user.id"], name=op.f("fk_share_link_created_by_id_ris_user")),
        sa.ForeignKeyConstraint(["revoked_by_id"], ["ris_user.id"], name=op.f("fk_share_link_revoked_by_id_ris_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_link")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_share_link_token_hash")),
    )
    op.create_index(op.f("ix_share_link_study_id"), "share_link", ["study_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_share_link_study_id"), table_name="share_link")
    op.drop_table("share_link")
