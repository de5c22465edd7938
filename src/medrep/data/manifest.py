"""CSV sources: any CSV, any column names (``csv:FILE?path=COL&label=COL&...``); by default the manifest
header ``path,label[,mask][,caption][,split]`` (column names case-insensitive).

Column options (names with spaces or slashes work; exact match first, then case-insensitive):
``path`` (default ``path``), ``label`` (class names or integers; default ``label``), or a multi-label form:
``findings=COL1,COL2`` (one column per finding holding 1 / 0 / −1 uncertain / blank, as CheXpert and
MIMIC-CXR), ``finding_list=COL`` (finding names joined by ``|``, as NIH ChestX-ray14's ``Finding Labels``;
``none=No Finding`` names the token that means no finding), or ``onehot=COL1,COL2`` (one-hot classes, as
ISIC 2018/2019: a single-label task).  ``patient``, ``mask``, ``caption``, ``split`` name those columns;
``second_reader=COL`` names a column of a second reader's mask images for double-read data (a blank cell: that
reader outlined nothing; ``explain --protocol chexlocalize`` scores it as the human benchmark);
``root=DIR`` is the folder image and mask paths are relative to (default: the CSV's folder);
``attributes=COL1,COL2`` (or ``attrs=``) are carried on each item as attributes (default: every column not
used otherwise; ``attributes=none`` for none) and never used as labels.  ``boxes=BOXES.csv``: lesion boxes, one row per box
(``path[,finding],x,y,w,h`` or ``…,x_min,y_min,x_max,y_max``); ``polygons=POLYGONS.csv``: lesion polygons
(``path[,finding],polygon``, JSON vertices); see :mod:`medrep.data.box_tables`.
With findings: ``finding=NAME`` (a binary task), ``uncertain=ones|zeros|ignore``, ``blank=ignore``
(see :mod:`medrep.data.findings`).  Also ``classes=a,b,c`` (class order) and, for DICOM, ``frame=N``,
``frames=all``, ``window=c,w|none``, and ``dicom_attributes=PatientSex,ViewPosition`` (``age_bins=``): header fields
from the allow-list of :mod:`medrep.data.dicom_headers` carried as attributes beside the CSV's columns (a file that
is not DICOM, or lacks the field, gets the unknown value).  Ids are the image paths as written in the CSV.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from medrep.data.base import ImageDataset, SkipLog
from medrep.data.box_tables import SINGULAR, attach_shapes
from medrep.data.dicom_headers import take_header_options, with_header_attributes
from medrep.data.files import take_read_options
from medrep.data.findings import FINDING_OPTIONS, parse_code, take_finding_options
from medrep.data.images import as_path, show_path
from medrep.data.registry import register_data_scheme
from medrep.data.tables import CsvTable, TableBuilder, resolve_path
from medrep.errors import BadInputError, MedrepError, Param, SpecError
from medrep.specs import Spec, take_list_option

REQUIRED = ("path", "label")
OPTIONAL = ("mask", "caption", "split")
COLUMN_OPTIONS = ("path", "label", "patient", "mask", "caption", "split", "second_reader")
KNOWN_OPTIONS = (*COLUMN_OPTIONS, "findings", "finding_list", "none", "onehot", "root", "attributes", "attrs", "boxes", "polygons",
                 "classes",
                 *FINDING_OPTIONS, "frame", "frames", "window", "dicom_attributes", "age_bins")
_EXPECTED = "expected path,label[,mask][,caption][,split], or name the columns: ?path=COL&label=COL"


def _columns(table: CsvTable, opts: dict[str, str]) -> dict[str, int | None]:
    """Column index per role (None when that role is not in this CSV)."""
    mapped = any(k in opts for k in (*COLUMN_OPTIONS, "findings", "finding_list", "onehot"))
    label_forms = [k for k in ("label", "findings", "finding_list", "onehot") if k in opts]
    if len(label_forms) > 1:
        raise SpecError(f"give one label form, not {' and '.join(label_forms)}", where=f"?{label_forms[1]}")
    needs_label = not any(k in opts for k in ("findings", "finding_list", "onehot"))
    cols: dict[str, int | None] = {}
    for role in COLUMN_OPTIONS:
        if role in opts:
            cols[role] = table.column(opts[role], option=role)
        elif table.has(role) and (role != "label" or needs_label):
            cols[role] = table.column(role)
        elif role == "path" or (role == "label" and needs_label):
            found = ", ".join(h for h in table.header if h) or "none"
            hint = _EXPECTED if not mapped else f"name it with ?{role}=COL"
            raise MedrepError(f"missing required column {role!r} (found columns: {found}; {hint})", where=table.where)
        else:
            cols[role] = None
    return cols


def _label_form(table: CsvTable, opts: dict[str, str]) -> tuple[str, list[int], list[str]]:
    """(form, column indexes, finding / class names) of the label: label, findings, finding_list or onehot."""
    for form in ("findings", "onehot"):
        if form in opts:
            names = [n.strip() for n in opts.pop(form).split(",") if n.strip()]
            if len(names) < 2 and form == "onehot":
                raise SpecError("one-hot labels need at least two columns", where="?onehot")
            idx = [table.column(n, option=form) for n in names]
            return form, idx, [table.header[i] for i in idx]
    if "finding_list" in opts:
        return "finding_list", [table.column(opts.pop("finding_list"), option="finding_list")], []
    return "label", [], []


def _attribute_columns(table: CsvTable, opts: dict[str, str], used: set[int]) -> list[int]:
    # attributes= as on every other source (demo, dicom:, the DICOM recipes); attrs= is its short spelling
    given = [k for k in ("attributes", "attrs") if k in opts]
    if len(given) > 1:
        raise SpecError("attributes= and attrs= are the same option: give one", where="?attrs")
    option = given[0] if given else "attributes"
    raw = opts.pop(option, None)
    if raw is None:
        return [i for i, h in enumerate(table.header) if h and i not in used]
    if raw.strip().lower() == "none":
        return []
    return [table.column(n.strip(), option=option) for n in raw.split(",") if n.strip()]


def _onehot_class(values: list[str], idx: list[int], names: list[str], where: str) -> str:
    hot = []
    for i, name in zip(idx, names):
        try:
            if float(values[i] or 0) == 1.0:
                hot.append(name)
        except ValueError:
            raise BadInputError(f"one-hot column {name!r} holds {values[i]!r}, not 0 or 1", where=where) from None
    if len(hot) != 1:
        raise BadInputError(f"{len(hot)} of the one-hot columns {', '.join(names)} are 1 (expected exactly one)", where=where)
    return hot[0]


def _finding_lists(table: CsvTable, col: int, none_token: str) -> tuple[list[str], list[tuple[int, list[str], set[str]]]]:
    rows = []
    names: set[str] = set()
    for line, values in table.rows():
        tokens = {t.strip() for t in values[col].split("|") if t.strip()} - {none_token}
        names |= tokens
        rows.append((line, values, tokens))
    return sorted(names), rows


def load_manifest(path, options: dict[str, str] | None = None, skip_bad: bool = False, skipped: SkipLog | None = None) -> ImageDataset:
    csv_path = as_path(path)
    where = show_path(csv_path)
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(KNOWN_OPTIONS))
    if unknown:
        raise SpecError(f"unknown option {unknown[0]!r} for csv: (known: {', '.join(sorted(KNOWN_OPTIONS))})", where=Param("data"))
    read = take_read_options(opts)
    headers = take_header_options(opts, option="dicom_attributes")
    fixed = take_list_option(opts, "classes")
    policy = take_finding_options(opts)
    table = CsvTable(csv_path, empty_hint=" (expected a header line path,label[,mask][,caption][,split])")
    cols = _columns(table, opts)
    form, label_idx, names = _label_form(table, opts)
    none_token = opts.pop("none", "No Finding")
    if policy.finding and form not in ("findings", "finding_list"):
        raise SpecError("finding= picks one of several findings; name them with findings=COL1,COL2 or finding_list=COL",
                        where="?finding")
    used = {i for i in cols.values() if i is not None} | set(label_idx)
    attr_idx = _attribute_columns(table, opts, used)
    root = Path(opts["root"]) if "root" in opts else csv_path.parent
    if form == "finding_list":
        names, rows = _finding_lists(table, label_idx[0], none_token)
        row_iter = ((line, values) for line, values, _ in rows)
        token_sets = iter([t for _, _, t in rows])
    else:
        row_iter = table.rows()
    builder = TableBuilder(where, [table.header[i] for i in attr_idx],
                           findings=names if form in ("findings", "finding_list") else None, policy=policy,
                           fill_missing_masks=False)
    builder.any_caption = cols["caption"] is not None
    seen: dict[str, int] = {}
    for line, values in row_iter:
        get = (lambda role: values[cols[role]].strip() if cols[role] is not None else "")
        for role in ("path", "label", "split"):
            if cols.get(role) is not None and not get(role) and (role != "label" or form == "label"):
                column = table.header[cols[role]]
                named = "" if column.lower() == role else f" (column {column!r})"
                raise BadInputError(f"row {line}: empty {role!r} value{named}", where=where)
        rel = get("path")
        key = PurePosixPath(rel.replace("\\", "/")).as_posix()
        if key in seen:
            raise BadInputError(f"row {line}: {rel} is listed twice (first at row {seen[key]})", where=where)
        seen[key] = line
        origin = f"{where} row {line}"
        label, codes = "", None
        if form == "label":
            label = get("label")
            if fixed is not None and label not in fixed:
                raise BadInputError(f"row {line}: label {label!r} is not in ?classes={','.join(fixed)}", where=where)
        elif form == "onehot":
            label = _onehot_class(values, label_idx, names, origin)
        elif form == "findings":
            try:
                codes = [parse_code(values[i]) for i in label_idx]
            except ValueError as err:
                raise BadInputError(f"row {line}: {err}", where=where) from None
        else:
            tokens = next(token_sets)
            codes = [1.0 if n in tokens else 0.0 for n in names]
        mask = resolve_path(get("mask"), root) if get("mask") else None
        row = builder.add(resolve_path(rel, root), key, origin, label=label, codes=codes, patient=get("patient") or None,
                    attributes=[values[i].strip() for i in attr_idx], split=get("split") if cols["split"] is not None else None,
                    caption=get("caption") or None, mask=mask)
        if cols["second_reader"] is not None:
            builder.add_second_reading(row, mask=resolve_path(get("second_reader"), root) if get("second_reader") else None)
    if not len(builder):
        raise MedrepError("manifest has a header but no rows", where=where)
    for kind in ("boxes", "polygons"):
        if kind in opts:
            if cols["mask"] is not None:
                raise SpecError(f"give mask images (a mask column) or a {SINGULAR[kind]} CSV, not both", where=f"?{kind}")
            attach_shapes(builder, opts[kind], csv_path, kind)
    if cols["patient"] is not None and any(p is None for p in builder.patients):
        row = builder.patients.index(None)
        raise BadInputError(f"empty patient value (column {table.header[cols['patient']]!r})", where=builder.origins[row])
    return with_header_attributes(builder.build(read, skip_bad, skipped, classes=fixed), headers)


@register_data_scheme("csv", detect=lambda p: p.lower().endswith(".csv") and Path(p).is_file())
def _load_csv(spec: Spec, skip_bad: bool, skipped: SkipLog) -> ImageDataset:
    return load_manifest(spec.name, spec.options, skip_bad, skipped)
