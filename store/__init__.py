"""The system of record: SQLAlchemy 2 + GeoAlchemy2 models, Alembic migrations, queries."""
