"""`clippings report`: the HTML report of a links folder, checked by parsing it and in headless Chromium.

The links folder is built here from a small archive with known groups: clusters are the groups, and the
MST has known within-group and between-group distances, so the weakest edge of each group is known.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw

from clippings.archive import CLUSTERS_SCHEMA, MST_SCHEMA
from clippings.cli import main
from clippings.embeddings import embeddings_table
from clippings.report import size_bins, weakest_edges
from clippings.storage import write_dataset, write_json, write_table_atomic

# (story word, reprints); the first caption of story 0 carries HTML that must be escaped
STORIES = [("harbor", 5), ("senate", 4), ("tractor", 3), ("wedding", 2), ("comet", 2)]
SINGLETONS = 3
EVIL = '<script>document.title="pwned"</script> & "quotes"'


def _png(colour: tuple[int, int, int], text: str, size: tuple[int, int] = (160, 100)) -> bytes:
    im = Image.new("RGB", size, colour)
    ImageDraw.Draw(im).text((8, 40), text, fill=(255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """An archive, its links folder (clusters, mst, links.json), embeddings and an ARI curve CSV."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(3)
    ids, captions, images, sources, clusters, mst = [], [], [], [], [], []
    for s, (word, n) in enumerate(STORIES):
        members = [f"s{s}-{j:02d}" for j in range(n)]
        for j, m in enumerate(members):
            ids.append(m)
            caption = f"The {word} story, reprint {j}"
            captions.append(EVIL + " " + caption if (s, j) == (0, 0) else caption)
            images.append(_png((40 * s + 30, 90, 160 - 20 * s), f"{word} {j}"))
            sources.append(f"Gazette {j}")
            clusters.append((m, members[0], n))
        # a chain inside the group: distances 0.0 (exact duplicate), then rising; the last is the weakest
        for j in range(1, n):
            mst.append((members[j - 1], members[j], round(0.02 * j * (s + 1) if j > 1 else 0.0, 4)))
    for k in range(SINGLETONS):
        ids.append(f"z{k}")
        captions.append(f"Lonely notice {k}")
        images.append(b"not an image" if k == 0 else _png((200, 200, 200), f"z{k}"))
        sources.append("Courier")
        clusters.append((f"z{k}", f"z{k}", 1))
    heads = [f"s{s}-00" for s in range(len(STORIES))] + [f"z{k}" for k in range(SINGLETONS)]
    for a, b in zip(heads, heads[1:], strict=False):  # between-group edges, all beyond any threshold
        mst.append((a, b, 0.9))
    n = len(ids)
    archive = root / "archive"
    dates = [f"1921-05-{i % 9 + 1:02d}" for i in range(n)]
    write_dataset(pa.table({"clipping_id": ids, "image": pa.array(images, pa.binary()), "caption": captions,
                            "label": [c[1] for c in clusters], "source": sources, "date": dates}),
                  str(archive), rows_per_part=7)
    links = root / "links"
    links.mkdir()
    write_table_atomic(pa.table({"clipping_id": [c[0] for c in clusters], "cluster_id": [c[1] for c in clusters],
                                 "cluster_size": [c[2] for c in clusters]}, schema=CLUSTERS_SCHEMA),
                       str(links / "clusters.parquet"))
    write_table_atomic(pa.table({"src": [e[0] for e in mst], "dst": [e[1] for e in mst],
                                 "distance": [e[2] for e in mst]}, schema=MST_SCHEMA), str(links / "mst.parquet"))
    write_json(str(links / "links.json"), {"threshold": 0.25, "im_wt": 0.5, "k": 10})
    unit = rng.normal(size=(2, n, 16)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=2, keepdims=True)
    emb = root / "emb"
    write_dataset(embeddings_table(ids, unit[0], unit[1], "tiny:abc", "tiny"), str(emb))
    curve = root / "curve.csv"
    t = np.linspace(0.0, 0.6, 61)
    curve.write_text("threshold,ari,clusters\n" + "".join(f"{x:.3f},{1 - (x - 0.25) ** 2:.4f},9\n" for x in t))
    return {"root": root, "archive": str(archive), "links": str(links), "emb": str(emb), "curve": str(curve),
            "ids": ids, "image": unit[0], "text": unit[1], "mst": mst}


@pytest.fixture(scope="module")
def report(linked):
    out = linked["root"] / "out"
    code = main(["report", "--links", linked["links"], "--archive", linked["archive"], "--out", str(out),
                 "--curve", linked["curve"], "--embeddings", linked["emb"], "--top", "4"])
    assert code == 0
    return out


def _sections(page: str) -> list[str]:
    return re.findall(r'<section class="group".*?</section>', page, flags=re.S)


def test_report_galleries_why_and_escaping(report, linked):
    page = (report / "index.html").read_text()
    sections = _sections(page)
    # the 4 largest groups, largest first; singletons never shown
    assert [re.search(r'data-cluster="([^"]+)"', s).group(1) for s in sections] == [
        "s0-00", "s1-00", "s2-00", "s3-00"]
    assert [len(re.findall(r'<figure class="clip"', s)) for s in sections] == [5, 4, 3, 2]
    # weakest link = brute-force max distance among the group's inner MST edges; similarities from embeddings
    ids = linked["ids"]
    for s, section in enumerate(sections):
        inner = [e for e in linked["mst"] if e[0].startswith(f"s{s}-") and e[1].startswith(f"s{s}-")]
        a, b, d = max(inner, key=lambda e: e[2])
        i, j = ids.index(a), ids.index(b)
        img, txt = float(linked["image"][i] @ linked["image"][j]), float(linked["text"][i] @ linked["text"][j])
        assert f"Weakest link: {a} ↔ {b} at cosine distance {d:.4f}" in section
        assert f"image similarity {img:.3f}, text similarity {txt:.3f}" in section
    # captions are escaped: the script tag appears only as text
    assert "<script>document.title" not in page
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert page.count("<script>") == 1
    # thumbnails: one JPEG per shown clipping, longest side 128, referenced by the page
    thumbs = sorted(os.listdir(report / "images"))
    assert len(thumbs) == 14
    for name in thumbs:
        assert f'src="images/{name}"' in page
        with Image.open(report / "images" / name) as im:
            assert im.format == "JPEG" and max(im.size) == 128
    # plots: both inline SVGs; the chosen threshold from links.json is marked on the curve
    assert page.count("<svg") == 2 and "t = 0.250" in page and "best ARI 1.000 at 0.250" in page
    assert "http://" not in page and "https://" not in page


def test_size_bins_and_weakest_edges_against_brute_force():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, size=300)
    bins = size_bins(sizes)
    assert sum(c for _, c in bins) == 300
    for label, count in bins:
        low, _, high = label.partition("–")
        assert count == int(((sizes >= int(low)) & (sizes <= int(high or low))).sum())
    # random forest of edges over random clusters: the per-cluster max inner edge, by brute force
    n = 200
    cluster = rng.integers(0, 25, size=n)
    ids = [f"c{i:03d}" for i in range(n)]
    src, dst = rng.integers(0, n, size=400), rng.integers(0, n, size=400)
    dist = rng.random(400).round(3)
    clusters = pa.table({"clipping_id": ids, "cluster_id": [f"k{c}" for c in cluster]})
    mst = pa.table({"src": [ids[i] for i in src], "dst": [ids[i] for i in dst], "distance": dist})
    got = weakest_edges(clusters, mst, [f"k{c}" for c in range(25)])
    for c in range(25):
        inner = [e for e in range(400) if cluster[src[e]] == c and cluster[dst[e]] == c]
        if not inner:
            assert f"k{c}" not in got
            continue
        assert got[f"k{c}"][2] == max(dist[e] for e in inner)


def test_unreadable_image_is_shown_not_dropped(linked, tmp_path):
    out = tmp_path / "all"
    assert main(["report", "--links", linked["links"], "--archive", linked["archive"], "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert len(_sections(page)) == len(STORIES)  # singletons (including the broken image z0) are not groups
    out2 = tmp_path / "z"
    links = tmp_path / "links"
    shutil.copytree(linked["links"], links)
    # link the broken clipping with z1: its gallery shows a placeholder naming the problem
    write_table_atomic(pa.table({"clipping_id": ["z0", "z1"], "cluster_id": ["z0", "z0"], "cluster_size": [2, 2]},
                                schema=CLUSTERS_SCHEMA), str(links / "clusters.parquet"))
    assert main(["report", "--links", str(links), "--archive", linked["archive"], "--out", str(out2)]) == 0
    page = (out2 / "index.html").read_text()
    assert '<div class="broken">image unreadable: undecodable image (UnidentifiedImageError)</div>' in page
    assert len(os.listdir(out2 / "images")) == 1


def test_bad_inputs_exit_2_with_one_line(linked, tmp_path, capsys):
    def run(*extra: str, links: str = linked["links"]) -> str:
        code = main(["report", "--links", links, "--archive", linked["archive"], "--out", str(tmp_path / "o"),
                     *extra])
        assert code == 2
        return capsys.readouterr().err.strip()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(links=str(empty)) == (
        f"clippings report: error: links {empty}: clusters.parquet not found; give the --out folder of "
        "'clippings link'")
    assert run("--top", "0") == (
        "clippings report: error: The 'top' parameter of report must be an int in the range [1, inf). Got 0 instead.")
    bad_curve = tmp_path / "curve.csv"
    bad_curve.write_text("t,score\n0.1,0.5\n")
    assert run("--curve", str(bad_curve)) == (
        f"clippings report: error: curve {bad_curve}: needs columns 'threshold' and 'ari' (found: t, score); "
        "give the curve.csv written by 'clippings tune'")
    bad_curve.write_text("threshold,ari\n0.1,0.5\n0.2,high\n")
    assert run("--curve", str(bad_curve)) == (
        f"clippings report: error: curve {bad_curve}: line 3 has a non-numeric threshold or ari ('0.2', 'high'); "
        "fix or re-create the file")
    stranger = tmp_path / "stranger"
    shutil.copytree(linked["links"], stranger)
    write_table_atomic(pa.table({"clipping_id": ["s0-00", "nowhere-1"], "cluster_id": ["s0-00", "s0-00"],
                                 "cluster_size": [2, 2]}, schema=CLUSTERS_SCHEMA), str(stranger / "clusters.parquet"))
    assert run(links=str(stranger)) == (
        f"clippings report: error: links {stranger}: 1 clipping ids of clusters.parquet are not in archive "
        f"{linked['archive']} (e.g. 'nowhere-1'); give the archive the links were built from")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _dump_dom(url: str, profile) -> str:
    """The DOM after the page's scripts ran and its load event fired (headless, no network use)."""
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom", url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.mark.skipif(_chromium() is None, reason="Chromium not installed: run scripts/install-test-deps.sh")
def test_report_in_headless_chromium(report, tmp_path):
    url = (report / "index.html").as_uri()
    dom = _dump_dom(url, tmp_path / "profile")
    body = re.search(r"<body([^>]*)>", dom).group(1)
    # every thumbnail loaded (the page counts decoded images on load), all four groups visible
    assert 'data-images-loaded="14"' in body and 'data-images-broken="0"' in body
    assert 'data-visible-groups="4"' in body
    assert len(re.findall(r'<section class="group"[^>]*hidden', dom)) == 0
    # a search from the URL fragment hides the groups whose captions do not match (case-insensitive)
    dom = _dump_dom(url + "#q=SENATE%20story", tmp_path / "profile")
    assert 'data-visible-groups="1"' in dom and 'data-query="senate story"' in dom
    visible = re.findall(r'<section class="group"(?![^>]*hidden)[^>]*data-cluster="([^"]+)"', dom)
    assert visible == ["s1-00"]
    assert re.search(r'<input id="search"[^>]*>', dom)
    dom = _dump_dom(url + "?q=nothing-matches", tmp_path / "profile")
    assert 'data-visible-groups="0"' in dom and "0 of 4 groups shown" in dom


def test_archive_on_s3_with_image_paths(s3_bucket, tmp_path):
    """An archive of `image_path` rows on S3 (one file missing) and links on S3; the report is written locally."""
    import fsspec

    fs = fsspec.filesystem("s3")
    archive, links = f"{s3_bucket}/archive", f"{s3_bucket}/links"
    for i in range(2):
        fs.pipe(f"{archive}/img/a{i}.png".removeprefix("s3://"), _png((30, 60 * i, 90), f"a{i}"))
    write_dataset(pa.table({"clipping_id": ["a0", "a1", "a2"], "image_path": ["img/a0.png", "img/a1.png", "img/gone.png"],
                            "caption": ["Ship ahoy", "Ship ahoy!", "Ship ahoy."]}), archive)
    write_table_atomic(pa.table({"clipping_id": ["a0", "a1", "a2"], "cluster_id": ["a0"] * 3, "cluster_size": [3] * 3},
                                schema=CLUSTERS_SCHEMA), f"{links}/clusters.parquet")
    write_table_atomic(pa.table({"src": ["a0", "a1"], "dst": ["a1", "a2"], "distance": [0.1, 0.2]}, schema=MST_SCHEMA),
                       f"{links}/mst.parquet")
    write_json(f"{links}/links.json", {"threshold": 0.25})
    out = tmp_path / "r"
    assert main(["report", "--links", links, "--archive", archive, "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert page.count('<img src="images/') == 2
    assert '<div class="broken">image file not found: img/gone.png</div>' in page
    assert "Weakest link: a1 ↔ a2 at cosine distance 0.2000" in page


def test_report_of_a_real_link_run(linked, tmp_path):
    """Links written by clippings.link.pipeline (the real format, with diagnostics) report as expected."""
    from clippings.embeddings import read_embeddings
    from clippings.link.pipeline import link_embeddings, write_links

    emb = read_embeddings(linked["emb"])
    groups = np.array([i.split("-")[0] for i in emb.ids])  # stories s0..s4 and singletons z0..z2
    centres = {g: np.random.default_rng(len(g) * 31 + ord(g[-1])).normal(size=16) for g in set(groups)}
    vectors = np.stack([centres[g] + 0.05 * np.random.default_rng(i).normal(size=16) for i, g in enumerate(groups)])
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    emb.image, emb.text = vectors, vectors
    links = str(tmp_path / "links")
    write_links(links, link_embeddings(emb, threshold=0.1, im_wt=0.5, k=5))
    out = tmp_path / "r"
    assert main(["report", "--links", links, "--archive", linked["archive"], "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    clusters = [re.search(r'data-cluster="([^"]+)"', s).group(1) for s in _sections(page)]
    assert clusters == ["s0-00", "s1-00", "s2-00", "s3-00", "s4-00"]  # stable ids: smallest member id
    assert page.count("angular radius") == 5 and "Neighbour search: flat index, k = 5 neighbours" in page
