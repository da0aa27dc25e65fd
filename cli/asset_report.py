"""The asset report behind `python demo.py --check` and every tool's start-up check.

`check_assets` looks at every file the pipeline uses, without loading the
1.2 GB BFM09 data, and says for each one: present or missing, its size,
whether it passed the format and shape checks, whether its SHA-256 matches
the release's copy, and where a user gets it.
"""
import dataclasses
import functools
import hashlib
import pathlib

from assets import catalog, checks
from load_data import (
    front_model_is_current,
    load_front_model,
    load_lm3d,
    read_index_files,
    read_std_exp,
)
from networks.files import load_network, model_kind
from texture.atlas import load_uv

# SHA-256 of the public index files as the release ships them; the copies this
# repository ships in BFM/ (MIT, BFM/LICENSE-index-files.txt) are byte-identical.
# A mismatch is reported as a warning (`AssetEntry.verified` is False), never as
# a blocking problem: the files are checked for format and shape anyway, and
# tests use synthetic index files of their own.
KNOWN_SHA256 = {
    catalog.EXP_IDX_NAME: "62752a2cab3eea148569fb07e367e03535b4ee04aa71ea1a9aed36486d26c612",
    catalog.FRONT_IDX_NAME: "7d285dd018563113496127df9c364800183172adb4d3e802f726085dab66b087",
    catalog.INFO_NAME: "529398f76619ae7e22f43c25dd60a2473bcc2bcc8c894fd9c613c68624ce1c04",
    catalog.SELECT_ID_NAME: "6877a7d634330f25bf1e81bc062b6507ee53ea183838e471fa21b613048fa36b",
    catalog.LM3D_NAME: "53b83ce6e35c50ddc3e97603650cef4970320c157e75c241c844f29c1dcba65a",
    catalog.STD_EXP_NAME: "4abc20f1cad2471272637d366b511f1a44c2befeeb1353b7fff392ef72ed1203",
    # The UV layout this repository ships (BFM/NOTICE-BFM_UV.txt says whence).
    catalog.UV_NAME: "4abc09a37a989494b2d768fa88d1023230c13a9c2bdb892af7d23947f4328fdc",
}


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()



@dataclasses.dataclass
class AssetEntry:
    """One asset in a `check_assets` report.

    Attributes:
      name: file name, e.g. "Exp_Pca.bin".
      path: where it is looked for.
      role: "runtime" (needed to run), "conversion" (needed to build
        BFM_model_front.mat) or "optional" (not needed now).
      present: the file exists.
      ok: it exists and passed the format and shape checks.
      problem: what is wrong (None when ok, or when missing but not needed).
      size: bytes, None when missing.
      source: where a user gets it.
      verified: True when its SHA-256 matches the release's, False when it
        differs (a warning, not a problem), None when there is no known hash
        or it could not be hashed.
      note: extra information (e.g. "will be built by transferBFM09()").
    """
    name: str
    path: pathlib.Path
    role: str
    present: bool
    ok: bool
    problem: object
    size: object
    source: str
    verified: object = None
    note: object = None

    @property
    def blocking(self):
        """True when this entry stops the pipeline from running."""
        return self.role != "optional" and not self.ok and self.problem is not None


class AssetReport:
    """The result of `check_assets`.

    Attributes:
      entries: list of `AssetEntry`, one per asset.
      ok: True when everything needed to run is present and valid (the front
        model may still have to be built by `transferBFM09`, see
        `needs_conversion`).
      needs_conversion: BFM_model_front.mat is missing or older than its inputs
        and will be built from the raw files.
      problems: blocking problems, one line each: "PATH: what is wrong (get it
        from: WHERE)".
      warnings: non-blocking notes (hash mismatches, broken optional files).
    """

    def __init__(self, entries, needs_conversion):
        self.entries = list(entries)
        self.needs_conversion = needs_conversion
        self.problems = [catalog.format_problem(e.path, e.problem, e.source)
                         for e in self.entries if e.blocking]
        self.warnings = []
        for e in self.entries:
            if e.verified is False:
                self.warnings.append(catalog.format_problem(
                    e.path, "SHA-256 differs from the release's copy (a modified or "
                    "synthetic file; its format checks passed)", e.source))
            if e.role == "optional" and e.present and not e.ok and e.problem:
                self.warnings.append(catalog.format_problem(e.path, f"{e.problem} (not needed now)",
                                                    e.source))
        self.ok = not self.problems

    def raise_if_failed(self):
        """Raises AssetError with the first problem (and a count of the others) unless ok."""
        if self.ok:
            return
        message = self.problems[0]
        if len(self.problems) > 1:
            message += f" (and {len(self.problems) - 1} more asset problem(s); run " \
                       "`python demo.py --check`)"
        first = next(e for e in self.entries if e.blocking)
        raise catalog.AssetError(message, path=first.path, problem=first.problem,
                                source=first.source)

    def __bool__(self):
        return self.ok

    def __str__(self):
        rows = []
        for e in self.entries:
            if e.ok:
                status = "ok"
            elif not e.present:
                status = "missing" if e.blocking else "absent"
            else:
                status = "BAD" if e.blocking else "bad"
            size = "-" if e.size is None else _human_size(e.size)
            sha = {True: "verified", False: "DIFFERS", None: ""}[e.verified]
            detail = e.problem if e.problem else (e.note or "")
            rows.append((status, e.role, catalog.display_path(e.path), size, sha, detail))
        header = ("status", "role", "file", "size", "sha256", "detail")
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
        lines = ["  ".join(str(r[i]).ljust(widths[i]) for i in range(5)) + "  " + r[5]
                 for r in [header] + rows]
        lines.insert(1, "-" * (sum(widths) + 2 * 5 + 6))
        if self.problems:
            lines.append("")
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p}" for p in self.problems]
        if self.warnings:
            lines.append("")
            lines.append("Warnings:")
            lines += [f"  {w}" for w in self.warnings]
        lines.append("")
        if self.ok:
            lines.append("All assets needed to run are present and valid" +
                         (" (BFM_model_front.mat will be built by transferBFM09())."
                          if self.needs_conversion else "."))
        else:
            lines.append("Assets are missing or invalid: see the problems above.")
        return "\n".join(lines)


def _human_size(n_bytes):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024.0


def _probe(path, check):
    """Runs `check()`; returns (present, ok, problem, size)."""
    path = pathlib.Path(path)
    present = path.exists()
    size = path.stat().st_size if present and path.is_file() else None
    try:
        check()
    except catalog.AssetError as error:
        return present, False, error.problem or str(error), size
    return present, True, None, size


def check_assets(bfm_dir=catalog.BFM_DIR, model_path=catalog.MODEL_PATH):
    """Checks every asset the pipeline uses and says where to get what is missing.

    Checks: presence; .mat container integrity (truncation), variables and
    shapes; Exp_Pca.bin size against its header and BFM_exp_idx.mat;
    std_exp.txt's count; the front model's full validation; the network graph
    (parses, has `input_imgs` and `coeff`: this imports TensorFlow when the
    file exists); SHA-256 of the public index files against the release's
    (a mismatch is a warning, `AssetEntry.verified` False). The 1.2 GB BFM09
    file is checked from its headers only, without loading its data.

    Roles: the network and similarity_Lm3D_all.mat are always needed. When
    BFM_model_front.mat is valid and up to date (`front_model_is_current`),
    the raw BFM09 files and the conversion index files are optional; otherwise
    they are needed to build it. A missing front model is never itself a
    problem: it is built, not fetched, and whatever stops it from being built
    is reported on the conversion inputs. With the index files this repository
    ships in BFM/, a fresh checkout's problems are exactly the three licensed
    files a user brings: 01_MorphableModel.mat, Exp_Pca.bin and the network.
    select_vertex_id.mat and BFM_UV.mat are optional: only the uv outputs
    (UV texture maps) need them.

    Args:
      bfm_dir: the BFM folder.
      model_path: the frozen network, or None when the run needs none
        (`demo.py --model none`): it is then left out of the report.

    Returns:
      An `AssetReport`.
    """
    bfm_dir = pathlib.Path(bfm_dir)
    model_path = None if model_path is None else pathlib.Path(model_path)

    def hash_state(path, name):
        if name not in KNOWN_SHA256 or not path.is_file():
            return None
        try:
            return _sha256(path) == KNOWN_SHA256[name]
        except OSError:
            return None

    index_state = {}
    trim_holder = {}

    def check_index_trio():
        trim_holder["value"] = read_index_files(bfm_dir)

    # Index files: check each on its own for a precise message, then together.
    index_variables = {
        catalog.EXP_IDX_NAME: ["trimIndex"],
        catalog.FRONT_IDX_NAME: ["idx"],
        catalog.INFO_NAME: catalog.INFO_KEYS,
    }
    for name, variables in index_variables.items():
        path = bfm_dir / name
        check = functools.partial(checks.load_mat, path, variables, catalog.SOURCE_INDEX)
        index_state[name] = _probe(path, check)
    if all(state[1] for state in index_state.values()):
        # Cross-checks; a failure is attributed to the file the error names.
        try:
            check_index_trio()
        except catalog.AssetError as error:
            culprit = error.path.name if error.path is not None else catalog.INFO_NAME
            present, _, _, size = index_state[culprit]
            index_state[culprit] = (present, False, error.problem, size)
    trim = trim_holder.get("value")

    std_path = bfm_dir / catalog.STD_EXP_NAME
    std_state = _probe(std_path, lambda: read_std_exp(std_path))
    exp_info = {}

    def check_exp():
        n_vertices = trim[0].size if trim is not None else None
        exp_info["value"] = checks.inspect_exp_pca(bfm_dir / catalog.EXP_PCA_NAME, n_vertices)

    exp_state = _probe(bfm_dir / catalog.EXP_PCA_NAME, check_exp)
    if exp_state[1] and std_state[1]:
        n_std = read_std_exp(bfm_dir / catalog.STD_EXP_NAME).size
        if n_std != exp_info["value"][0]:
            std_state = (std_state[0], False, f"holds {n_std} standard deviations, but "
                         f"{catalog.EXP_PCA_NAME} has {exp_info['value'][0]} bases", std_state[3])

    def check_bfm09():
        n_bfm, _, _ = checks.inspect_bfm09(bfm_dir / catalog.BFM09_NAME)
        if trim is not None and trim[0].max() >= n_bfm:
            raise catalog.AssetError.about(
                bfm_dir / catalog.BFM09_NAME, f"has {n_bfm} vertices, but "
                f"{catalog.EXP_IDX_NAME} refers to vertex {trim[0].max() + 1}",
                catalog.SOURCE_BFM09)

    bfm_state = _probe(bfm_dir / catalog.BFM09_NAME, check_bfm09)

    front_path = bfm_dir / catalog.FRONT_MODEL_NAME
    front_state = _probe(front_path, lambda: load_front_model(front_path))
    front_current = front_state[1] and front_model_is_current(bfm_dir)
    conversion_states = {
        catalog.BFM09_NAME: (bfm_state, catalog.SOURCE_BFM09),
        catalog.EXP_PCA_NAME: (exp_state, catalog.SOURCE_EXP_PCA),
        catalog.STD_EXP_NAME: (std_state, catalog.SOURCE_INDEX),
        catalog.EXP_IDX_NAME: (index_state[catalog.EXP_IDX_NAME], catalog.SOURCE_INDEX),
        catalog.FRONT_IDX_NAME: (index_state[catalog.FRONT_IDX_NAME], catalog.SOURCE_INDEX),
        catalog.INFO_NAME: (index_state[catalog.INFO_NAME], catalog.SOURCE_INDEX),
    }
    conversion_ok = all(state[1] for state, _ in conversion_states.values())
    # transferBFM09 runs unless the front model is current: then, and only then,
    # the conversion inputs are not needed.
    conversion_role = "optional" if front_current else "conversion"
    needs_conversion = not front_current and conversion_ok

    entries = []
    present, ok, problem, size = front_state
    note = None
    if ok and not front_current:
        note = "older than its inputs: transferBFM09() will rebuild it" if conversion_ok \
            else None
    if not present:
        # Built, never fetched: when it cannot be built yet, the conversion inputs
        # that are missing or broken are the blocking problems (conversion role).
        problem = None
        note = ("missing: will be built by transferBFM09() from the files below" if conversion_ok
                else "missing: transferBFM09() will build it once the files below are in place")
    elif not ok:
        problem = f"{problem}; delete it and rebuild it with load_data.transferBFM09()"
    entries.append(AssetEntry(catalog.FRONT_MODEL_NAME, front_path, "runtime", present, ok, problem,
                              size, catalog.SOURCE_FRONT_MODEL, None, note))

    lm_path = bfm_dir / catalog.LM3D_NAME
    present, ok, problem, size = _probe(lm_path, lambda: load_lm3d(bfm_dir))
    entries.append(AssetEntry(catalog.LM3D_NAME, lm_path, "runtime", present, ok, problem, size,
                              catalog.SOURCE_INDEX, hash_state(lm_path, catalog.LM3D_NAME)))

    if model_path is not None:
        present, ok, problem, size = _probe(model_path, lambda: load_network(model_path))
        pytorch = model_kind(model_path) == "pytorch"
        entries.append(AssetEntry(
            model_path.name, model_path, "runtime", present, ok, problem, size,
            catalog.SOURCE_PYTORCH_MODEL if pytorch else catalog.SOURCE_NETWORK, None,
            "the PyTorch release's R-Net" if pytorch and ok else None))

    for name, ((present, ok, problem, size), source) in conversion_states.items():
        path = bfm_dir / name
        note = None
        if conversion_role == "optional" and not present:
            problem, note = None, "not needed: BFM_model_front.mat is built"
        entries.append(AssetEntry(name, path, conversion_role, present, ok, problem, size, source,
                                  hash_state(path, name), note))

    select_path = bfm_dir / catalog.SELECT_ID_NAME
    present, ok, problem, size = _probe(
        select_path, lambda: checks.load_mat(select_path, ["select_id"], catalog.SOURCE_INDEX))
    entries.append(AssetEntry(catalog.SELECT_ID_NAME, select_path, "optional", present, ok,
                              problem if present else None, size, catalog.SOURCE_INDEX,
                              hash_state(select_path, catalog.SELECT_ID_NAME),
                              None if present else "needed by the uv outputs only"))

    uv_path = bfm_dir / catalog.UV_NAME
    present, ok, problem, size = _probe(uv_path, lambda: load_uv(bfm_dir))
    entries.append(AssetEntry(catalog.UV_NAME, uv_path, "optional", present, ok,
                              problem if present else None, size, catalog.SOURCE_UV,
                              hash_state(uv_path, catalog.UV_NAME),
                              "the UV layout of the uv outputs" if ok
                              else None if present else "needed by the uv outputs only"))
    return AssetReport(entries, needs_conversion)
