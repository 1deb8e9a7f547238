"""DuckDB views over a `fer-mine run` output, and the reports run on them (one SQL file each).

The Python side only finds the SQL files, binds parameters as DuckDB variables and runs
them; no user input is ever pasted into SQL text.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow.dataset as pads

from fer_mine.errors import FerMineError
from fer_mine.media.quality import QUALITY_SQL
from fer_mine.records import pieces, store
from fer_mine.records.people import people_file, persons_table
from fer_mine.records.schema import SCHEMAS, TABLES, check_table_file
from fer_mine.reports.params import ReportParams
from fer_mine.reports.registry import REPORTS
from fer_mine.reports.result import Result

# One image of the archive: a photo, or one sampled frame of a video (schema._FRAME). The views
# give it as the column `image`, so that the queries group faces by image in one way.
IMAGE_KEY = "uri || coalesce('#frame=' || frame_index, '')"
# The faces the reports count: those the filters of ReportParams keep
KEPT = (
    "confidence >= getvariable('min_confidence') AND quality >= getvariable('min_quality') "
    "AND NOT (getvariable('certain_only') AND coalesce(uncertain, false))"
)


def sql_text(name: str) -> str:
    if name not in REPORTS:
        raise FerMineError(f"unknown report {name!r}; `fer-mine report --list` names them")
    return (resources.files("fer_mine.sql") / REPORTS[name].sql_file).read_text()


def describe(name: str) -> str:
    """The first line of the report's leading comment: the question it answers."""
    first = sql_text(name).splitlines()[0]
    return first.removeprefix("--").strip()


class Archive:
    """A DuckDB connection with the views `faces`, `images`, `errors`, `videos` over one output folder."""

    def __init__(self, output: str | Path, params: ReportParams | None = None) -> None:
        self.output = str(output)
        self.params = params or ReportParams()
        remote = store.is_remote(self.output)
        store.check_scheme(self.output)
        if not remote and not Path(self.output).is_dir():
            raise FerMineError(f"output folder not found: {self.output}")
        files = pieces.table_files(self.output, TABLES)  # committed pieces only
        if not files["images"]:
            raise FerMineError(
                f"{self.output} holds no fer-mine tables (run `fer-mine run --output {self.output}` first)"
            )
        for table, paths in files.items():
            for path in paths:
                check_table_file(path, table)
        self.con = duckdb.connect()
        self._coverage: dict = {}
        self._bind(files, remote)

    def _bind(self, files: dict[str, list[str]], remote: bool) -> None:
        con, params = self.con, self.params
        for table, paths in files.items():
            if paths and not remote:
                con.execute(f"SET VARIABLE {table}_files = ?", [paths])
                con.execute(
                    f"CREATE VIEW all_{table} AS SELECT * FROM read_parquet(getvariable('{table}_files'))"
                )
            elif paths:
                # DuckDB reads buckets only through its httpfs extension, downloaded at run time
                # (impossible offline): it scans a pyarrow dataset over Beam's FileSystems instead,
                # reading the row groups a query needs rather than every file into memory first
                dataset = pads.dataset(paths, schema=SCHEMAS[table], format="parquet",
                                       filesystem=store.arrow_filesystem())  # fmt: skip
                con.register(f"all_{table}", dataset)
            else:
                con.register(f"all_{table}", SCHEMAS[table].empty_table())
        model = (
            params.model_sha256
            or con.execute("SELECT arg_max(model_sha256, processed_at) FROM all_images").fetchone()[0]
        )
        for name, value in (("model_sha256", model), ("min_confidence", params.min_confidence),
                            ("min_quality", params.min_quality), ("certain_only", params.certain_only),
                            ("since", params.since), ("until", params.until),
                            ("min_images", params.min_images), ("limit", params.limit),
                            ("per_emotion", params.per_emotion), ("per_person", params.per_person),
                            ("bucket_s", params.bucket_s)):  # fmt: skip
            con.execute(f'SET VARIABLE "{name}" = ?', [value])
        if params.since is None:
            con.execute("SET VARIABLE since = NULL::TIMESTAMP")
        if params.until is None:
            con.execute("SET VARIABLE until = NULL::TIMESTAMP")
        window = (
            "(getvariable('since') IS NULL OR taken_at >= getvariable('since')) AND "
            "(getvariable('until') IS NULL OR taken_at < getvariable('until'))"
        )
        mine = "model_sha256 = getvariable('model_sha256')"
        con.execute(
            f"CREATE VIEW images AS SELECT *, {IMAGE_KEY} AS image FROM all_images WHERE {mine} AND {window}"
        )
        con.execute(
            f"CREATE VIEW scoped_faces AS SELECT all_faces.*, {IMAGE_KEY} AS image, {QUALITY_SQL} AS quality, "
            f"{self._people_join()} WHERE {mine} AND {window}"
        )
        con.execute(f"CREATE VIEW faces AS SELECT * FROM scoped_faces WHERE {KEPT}")
        con.execute(f"CREATE VIEW errors AS SELECT * FROM all_errors WHERE {mine}")
        con.execute(f"CREATE VIEW videos AS SELECT * FROM all_videos WHERE {mine}")
        self.model_sha256 = model

    def _people_join(self) -> str:
        """`person_id` and `person_name` of each face (`fer-mine people`): null without `--people`."""
        if not store.is_file(people_file(self.output, "persons")):
            return "NULL::VARCHAR AS person_id, NULL::VARCHAR AS person_name FROM all_faces"
        for table in ("persons", "names"):
            path = people_file(self.output, table)
            if not store.is_file(path):
                self.con.register(f"all_{table}", SCHEMAS[table].empty_table())
                continue
            check_table_file(path, table)
            if table == "persons" and "uri" in store.read_schema(path).names:  # keyed by path before
                self.con.register("all_persons", persons_table(self.output))
                continue
            if store.is_remote(path):  # a row per face at most: read whole, through the store
                self.con.register(f"all_{table}", store.read_table(path))
                continue
            self.con.execute(f"SET VARIABLE {table}_file = ?", [path])
            self.con.execute(
                f"CREATE VIEW all_{table} AS SELECT * FROM read_parquet(getvariable('{table}_file'))"
            )
        # faces meet their person on the picture's hash and the model, never the path: a changed
        # file, or another model's faces, cannot take someone else's person
        self.con.execute(
            "CREATE VIEW people_of AS SELECT p.image_sha256 AS p_sha, p.frame_index AS p_frame, "
            "p.face_index AS p_face, p.model_sha256 AS p_model, p.person_id, n.name AS person_name "
            "FROM all_persons p LEFT JOIN all_names n USING (person_id)"
        )
        return ("person_id, person_name FROM all_faces LEFT JOIN people_of ON image_sha256 = p_sha "
                "AND face_index = p_face AND model_sha256 = p_model AND frame_index IS NOT DISTINCT FROM p_frame")  # fmt: skip

    def coverage(self, rests_on: tuple[str, str] | None = None) -> dict:
        """How many faces the figures rest on, and how many each filter left out, and those the
        report's own condition leaves out (`rests_on`: registry.Report's):
        {"rests_on", "recorded", "left_out": {why: count}, "note": one line for people}."""
        if rests_on not in self._coverage:
            condition, own = rests_on or ("true", "")
            counts = self.con.execute(
                f"SELECT count(*), count(*) FILTER ({KEPT}), "
                "count(*) FILTER (confidence < getvariable('min_confidence')), "
                "count(*) FILTER (quality < getvariable('min_quality')), "
                "count(*) FILTER (getvariable('certain_only') AND coalesce(uncertain, false)), "
                f"count(*) FILTER ({KEPT} AND NOT coalesce({condition}, false)) FROM scoped_faces"
            ).fetchone()
            total, kept, *dropped, outside = counts
            reasons = (f"with confidence under {self.params.min_confidence:g}",
                       f"with quality under {self.params.min_quality:g}", "uncertain", own)  # fmt: skip
            left_out = {reason: n for n, reason in zip([*dropped, outside], reasons, strict=True) if n}
            why = ", ".join(f"{n:,} {reason}" for reason, n in left_out.items())
            rests = kept - outside
            left = f"; {total - rests:,} left out ({why})" if total > rests else ""
            self._coverage[rests_on] = {"rests_on": rests, "recorded": total,
                                        "left_out": {k.removeprefix("with "): v for k, v in left_out.items()},
                                        "note": f"rests on {rests:,} of {total:,} faces{left}"}  # fmt: skip
        return self._coverage[rests_on]

    def _counted(
        self, result: Result, sql: str, always: bool, rests_on: tuple[str, str] | None = None
    ) -> Result:
        """A result over the faces view says what it rests on: always for a report (counted on
        the faces its own condition keeps), and for a query whenever a filter left faces out."""
        code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
        if re.search(r"\bfaces\b", code):
            coverage = self.coverage(rests_on)
            if always or coverage["rests_on"] < coverage["recorded"]:
                result.faces = {k: v for k, v in coverage.items() if k != "note"}
                result.notes.append(coverage["note"])
        return result

    def query(self, sql: str, name: str = "query", title: str = "") -> Result:
        try:
            cursor = self.con.execute(sql)
        except duckdb.Error as exc:
            message = str(exc).strip().splitlines()[0]
            raise FerMineError(f"SQL error in {name}: {message}") from None
        columns = [d[0] for d in cursor.description] if cursor.description else []
        return Result(name, title or name, columns, cursor.fetchall() if columns else [])

    def report(self, name: str) -> Result:
        sql = sql_text(name)
        return self._counted(
            self.query(sql, name, describe(name)), sql, always=True, rests_on=REPORTS[name].rests_on
        )

    def ask(self, sql: str) -> Result:
        """The user's own SQL (`fer-mine query`)."""
        return self._counted(self.query(sql, "query", sql), sql, always=False)
