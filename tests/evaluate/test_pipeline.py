"""End to end on small synthetic archives: evaluate (+ MLflow), cluster, outliers, propagate, map, CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spacessl.archive import open_archive
from spacessl.cli import main
from spacessl.evaluate.catalog import read_catalog
from spacessl.evaluate.linear_probe import C_GRID
from tests.evaluate.conftest import log_spectrum, write_embeddings


def test_evaluate_with_baselines_and_mlflow(seismic_set, tmp_path, capsys):
    _, emb = seismic_set
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rc = main(["evaluate", emb, "--split", "grouped", "--json", "--tracking-uri", uri, "--max-samples", "300"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out)[:5] == ["ssl", "raw", "random_init", "split", "n"]
    assert out["split"] == "grouped" and out["n"] == 300 and out["groups_on_both_sides"] == 0
    for name in ("ssl", "raw", "random_init"):
        assert set(out[name]) == {"knn_acc", "linear_acc", "kmeans_acc", "nmi", "ari"}
    assert out["ssl"]["knn_acc"] > 0.6  # log spectra separate the classes; chance is 0.2
    conf = np.array(out["confusion"]["ssl"]["knn"])
    assert conf.shape == (5, 5) and conf.sum() == out["n_test"]
    # no run id in the store's attributes: a linked evaluation run holds the metrics
    from mlflow.tracking import MlflowClient

    run = MlflowClient(uri).get_run(out["mlflow"]["run_id"])
    assert out["mlflow"]["mode"] == "linked-run" and run.data.tags["spacessl.kind"] == "evaluation"
    assert run.data.metrics["eval_grouped_ssl_knn_acc"] == pytest.approx(out["ssl"]["knn_acc"])
    assert "eval_grouped_random_init_ari" in run.data.metrics
    # the probe's C per feature set, chosen on the train rows from the grid the settings name
    assert set(out["linear_c"]) == {"ssl", "raw", "random_init"} and set(out["linear_c"].values()) <= set(C_GRID)
    assert "grouped cross-validation on the train rows" in out["settings"]["linear"]
    assert run.data.metrics["eval_grouped_raw_linear_c"] == out["linear_c"]["raw"]


def test_evaluate_finds_the_model_run_in_the_store_the_embeddings_name(seismic_set, tmp_path, capsys, monkeypatch):
    """Without --tracking-uri or $MLFLOW_TRACKING_URI the metrics go to the model's run in the store that the
    embedding job recorded, not into a new store under --output-dir."""
    from mlflow.tracking import MlflowClient

    from spacessl import tracking

    archive_url, _ = seismic_set
    uri = f"sqlite:///{tmp_path}/models.db"
    run_id = tracking.create_run(uri, "spacessl", "model")
    emb = write_embeddings(open_archive(archive_url), str(tmp_path / "e.zarr"), log_spectrum,
                           attrs={"run_id": run_id, "tracking_uri": uri})
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    other = tmp_path / "elsewhere"
    assert main(["evaluate", emb, "--json", "--max-samples", "200", "--no-baselines", "--output-dir",
                 str(other)]) == 0
    logged = json.loads(capsys.readouterr().out)["mlflow"]
    assert logged == {"tracking_uri": uri, "run_id": run_id, "mode": "model-run"}
    assert "eval_grouped_ssl_knn_acc" in MlflowClient(uri).get_run(run_id).data.metrics
    assert not other.exists()


def test_evaluate_refuses_what_it_cannot_score(seismic_set, capsys):
    _, emb = seismic_set
    for args, message in ((["--k", "0"], "--k (kNN neighbours) and --max-samples must be >= 1, got 0"),
                          (["--max-samples", "1", "--split", "random"], "leaves 5 to train on and 0 to test"),
                          (["--max-samples", "1"], "needs a class with at least 3 rows")):
        assert main(["evaluate", emb, "--no-mlflow", "--no-baselines", *args]) == 2
        assert message in capsys.readouterr().err


def test_evaluate_logs_into_the_model_run(seismic_set, tmp_path):
    from spacessl import tracking
    from spacessl.evaluate.report import evaluate_embeddings, format_table, log_evaluation

    _, emb = seismic_set
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = tracking.create_run(uri, "spacessl", "model")
    result = evaluate_embeddings(emb, split="random", max_samples=200, baselines=False)
    result["run_id"] = run_id
    logged = log_evaluation(result, tracking_uri=uri)
    assert logged == {"tracking_uri": uri, "run_id": run_id, "mode": "model-run"}
    from mlflow.tracking import MlflowClient

    assert "eval_random_ssl_kmeans_acc" in MlflowClient(uri).get_run(run_id).data.metrics
    table = format_table(result)
    assert "split=random" in table and "icequake" in table


def test_cluster_catalog_and_montages(aurora_set, tmp_path, capsys):
    _, emb = aurora_set
    out = tmp_path / "catalog"
    assert main(["cluster", emb, "--k", "4", "--out", str(out), "--nearest", "4", "--random", "4"]) == 0
    csv, parquet = read_catalog(out / "catalog.csv"), read_catalog(out / "catalog.parquet")
    assert list(csv.columns) == ["id", "time", "source", "origin", "label", "cluster", "distance", "rank"]
    assert len(csv) == 256 and sorted(csv["id"]) == list(range(256)) and csv["cluster"].nunique() == 4
    pd.testing.assert_frame_equal(csv, parquet, check_dtype=False)
    for _, g in csv.groupby("cluster"):
        assert g["rank"].tolist() == list(range(len(g))) and g["distance"].is_monotonic_increasing
    montages = sorted((out / "montages").glob("cluster_*.png"))
    assert len(montages) == 4
    for p in [*montages, out / "clusters_over_time.png"]:
        with Image.open(p) as im:
            assert im.format == "PNG" and min(im.size) > 100 and np.asarray(im.convert("L")).std() > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["k"] == 4 and sum(summary["sizes"]) == 256
    with pytest.raises(Exception, match="overwrite"):
        from spacessl.evaluate.cluster import cluster_embeddings

        cluster_embeddings(emb, out, k=4)


def test_cluster_k_auto_says_why(seismic_set, tmp_path):
    from spacessl.evaluate.cluster import cluster_embeddings

    report = cluster_embeddings(seismic_set[1], tmp_path / "c", k="auto", k_range=range(2, 7), montage_nearest=2,
                                montage_random=2)
    assert 2 <= report.k <= 6 and "silhouette" in report.k_reason and len(report.k_scores) == 5


def test_cluster_keeps_the_best_of_its_restarts(seismic_set, tmp_path, capsys):
    from spacessl.cli import build_parser
    from spacessl.embed.store import open_embeddings
    from spacessl.evaluate.clustering import CLUSTER_RESTARTS, fit_kmeans
    from spacessl.evaluate.sample import take_rows, uniform_positions

    _, emb = seismic_set
    assert build_parser().parse_args(["cluster", emb, "--out", "c"]).restarts == CLUSTER_RESTARTS
    out = tmp_path / "c"
    assert main(["cluster", emb, "--k", "5", "--restarts", "4", "--out", str(out), "--nearest", "2",
                 "--random", "2"]) == 0
    assert "best of 4 restarts" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    # the same training sample as the command's (every row: fewer than --train-size), one seeding per seed
    e = open_embeddings(emb)
    train, _ = take_rows(e, uniform_positions(e, 100_000, seed=0))
    singles = [fit_kmeans(train, 5, seed=s, nredo=1)[1] for s in range(4)]
    assert singles[0] < max(singles)  # the seedings differ, so the objective tells whether all four ran
    assert summary["restarts"] == 4 and summary["objective"] == pytest.approx(max(singles), rel=1e-6)
    assert main(["cluster", emb, "--k", "5", "--restarts", "0", "--out", str(tmp_path / "d")]) == 2
    assert "--restarts must be >= 1, got 0" in capsys.readouterr().err


def test_cluster_whitened_finds_the_classes_a_loud_axis_hides(seismic_set, tmp_path, capsys):
    from spacessl.embed.store import open_embeddings
    from spacessl.evaluate.clustering import PcaWhitening, assign, hungarian_accuracy

    archive_url, _ = seismic_set
    a = open_archive(archive_url)
    rng = np.random.default_rng(0)
    ids = np.arange(a.n)
    y = ids % 2  # two classes, one per sign of axis 1; axis 0 is 300 x louder and knows nothing of them
    x = np.stack([rng.normal(0, 30.0, a.n), np.where(y == 0, -1.0, 1.0) + rng.normal(0, 0.1, a.n),
                  rng.normal(0, 0.1, a.n)], axis=1).astype(np.float32)
    url = write_embeddings(a, str(tmp_path / "loud.emb.zarr"), vectors=x)
    plain, white = tmp_path / "plain", tmp_path / "white"
    common = ["--k", "2", "--nearest", "2", "--random", "2"]
    assert main(["cluster", url, "--out", str(plain), *common]) == 0
    assert main(["cluster", url, "--out", str(white), "--whiten", "2", *common]) == 0
    assert "whitened to 2 axes" in capsys.readouterr().out
    by_id = {}
    for name, out in (("plain", plain), ("white", white)):
        cat = read_catalog(out / "catalog.csv").sort_values("id")
        by_id[name] = cat
        assert cat["id"].tolist() == ids.tolist()
    assert hungarian_accuracy(y, by_id["plain"]["cluster"].to_numpy()) < 0.7  # split along the loud axis
    assert hungarian_accuracy(y, by_id["white"]["cluster"].to_numpy()) > 0.97
    # the saved whitening and centroids give the catalog's clusters and distances back
    summary = json.loads((white / "summary.json").read_text())
    assert summary["whiten"] == 2 and summary["files"]["whitening"] == str(white / "whitening.npz")
    centroids = np.load(white / "centroids.npy")
    assert centroids.shape == (2, 2) and not (plain / "whitening.npz").exists()
    vectors = open_embeddings(url).read(0, a.n)[1]
    cl, dist = assign(PcaWhitening.load(white / "whitening.npz").apply(vectors), centroids)
    np.testing.assert_array_equal(cl, by_id["white"]["cluster"].to_numpy())
    np.testing.assert_allclose(dist, by_id["white"]["distance"].to_numpy(), atol=1e-5)
    # overwritten as they are, with fewer clusters: no montage or whitening of the whitened catalog is left
    assert main(["cluster", url, "--out", str(white), "--k", "1", "--nearest", "2", "--random", "2",
                 "--overwrite"]) == 0
    assert not (white / "whitening.npz").exists()
    assert sorted(p.name for p in (white / "montages").iterdir()) == ["cluster_000.png"]
    assert main(["cluster", url, "--out", str(tmp_path / "bad"), "--whiten", "0"]) == 2
    assert "--whiten must be >= 1 principal axes, got 0" in capsys.readouterr().err
    assert main(["cluster", url, "--out", str(tmp_path / "bad"), "--k", "auto", "--k-min", "9", "--k-max", "4"]) == 2
    assert "--k auto: no k (--k-min above --k-max) leaves none" in capsys.readouterr().err
    assert main(["cluster", url, "--out", str(tmp_path / "bad"), "--k", "3", "--train-size", "0"]) == 2
    assert "--train-size must be >= 1" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_outliers_cli(seismic_set, tmp_path, capsys):
    _, emb = seismic_set
    out = tmp_path / "outliers"
    assert main(["outliers", emb, "--top", "20", "--k", "5", "--out", str(out), "--montage", "8"]) == 0
    ranked = read_catalog(out / "outliers.csv")
    assert len(ranked) == 20 and ranked["score"].is_monotonic_decreasing and ranked["rank"].tolist() == list(range(20))
    with Image.open(out / "outliers.png") as im:
        assert im.format == "PNG"
    capsys.readouterr()
    # a second run into the same folder is refused, naming the file and the way out; --overwrite replaces it
    assert main(["outliers", emb, "--top", "10", "--k", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'outliers.csv'} already exists" in err and "--overwrite" in err
    assert len(read_catalog(out / "outliers.csv")) == 20
    assert main(["outliers", emb, "--top", "10", "--k", "5", "--out", str(out), "--montage", "4", "--overwrite"]) == 0
    assert len(read_catalog(out / "outliers.csv")) == 10
    assert json.loads((out / "outliers.json").read_text())["top"] == 10
    # --montage 0: no montage, and the earlier one goes with the list it showed
    assert main(["outliers", emb, "--top", "10", "--k", "5", "--out", str(out), "--montage", "0", "--overwrite"]) == 0
    assert "(no montage)" in capsys.readouterr().out and not (out / "outliers.png").exists()
    assert main(["outliers", emb, "--out", str(tmp_path / "neg"), "--dedup-s", "-5"]) == 2
    assert "--dedup-s and --montage must be >= 0" in capsys.readouterr().err


def test_propagate_catalog_and_quakeml(seismic_set, tmp_path, capsys):
    from spacessl.evaluate.quakeml import read_quakeml

    archive_url, emb = seismic_set
    a = open_archive(archive_url)
    labels = a.meta("label").compute()
    ice = np.flatnonzero(labels == a.label_names.index("earthquake"))[:5]
    seeds = tmp_path / "seeds.csv"
    pd.DataFrame({"id": ice, "label": "earthquake"}).to_csv(seeds, index=False)
    out = tmp_path / "prop"
    assert main(["propagate", "--seeds", str(seeds), "--embeddings", emb, "--out", str(out)]) == 0
    cat = read_catalog(out / "candidates.csv")
    assert len(cat) > 5 and not set(cat["id"]) & set(ice.tolist())
    assert (cat["class"] == "earthquake").all() and cat["score"].is_monotonic_decreasing
    assert (cat["label"] == "earthquake").mean() > 0.8  # the log spectra separate earthquakes well
    q = read_quakeml(out / "candidates.xml")
    assert q["id"].tolist() == cat["id"].tolist() and set(q["event_type"]) == {"earthquake"}
    assert (q["time"] - cat["time"]).abs().max() < pd.Timedelta(microseconds=1)
    bad = tmp_path / "bad.csv"
    bad.write_text("sample\n3\n")
    assert main(["propagate", "--seeds", str(bad), "--embeddings", emb, "--out", str(tmp_path / "b")]) == 2
    assert "has no 'id' column" in capsys.readouterr().err
    assert main(["propagate", "--seeds", str(seeds), "--embeddings", emb, "--out", str(tmp_path / "b"),
                 "--max-candidates", "0"]) == 2
    assert "--max-candidates must be >= 1" in capsys.readouterr().err
    # the earlier catalog is kept unless --overwrite; with it, a tighter threshold replaces every file
    n = len(cat)
    assert main(["propagate", "--seeds", str(seeds), "--embeddings", emb, "--out", str(out), "--threshold",
                 "0.999"]) == 2
    assert f"{out / 'candidates.csv'} already exists (and 3 more of its files)" in capsys.readouterr().err
    assert len(read_catalog(out / "candidates.csv")) == n
    assert main(["propagate", "--seeds", str(seeds), "--embeddings", emb, "--out", str(out), "--threshold",
                 "0.999", "--overwrite"]) == 0
    tight = read_catalog(out / "candidates.csv")
    assert len(tight) < n and len(read_quakeml(out / "candidates.xml")) == len(tight)
    assert json.loads((out / "propagate.json").read_text())["thresholds"] == {"earthquake": 0.999}


def test_map_png_and_self_contained_html(aurora_set, tmp_path):
    _, emb = aurora_set
    png = tmp_path / "map.png"
    assert main(["map", emb, "--out", str(png), "--color", "cluster", "--sample", "120", "--thumbnails", "50"]) == 0
    with Image.open(png) as im:
        assert im.format == "PNG"
    page = png.with_suffix(".html").read_text()
    assert page.count("<circle") == 120 and page.count("iVBORw0KGgo") == 50  # base64 PNG thumbnails
    assert "<script src" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_map_colours_by_a_cluster_catalog_of_the_same_store_only(aurora_set, seismic_set, tmp_path, capsys):
    from spacessl.evaluate.embedding_map import MapError, _catalog_clusters, _read_cluster_catalog

    archive_url, emb = aurora_set
    assert main(["cluster", emb, "--k", "4", "--out", str(tmp_path / "c"), "--restarts", "2"]) == 0
    cat = read_catalog(tmp_path / "c" / "catalog.parquet")
    ids = np.array([200, 3, 77, 150])
    times = open_archive(archive_url).meta("time_ns").compute()[ids]
    expected = cat.set_index("id").loc[ids, "cluster"].to_numpy()
    np.testing.assert_array_equal(_catalog_clusters(*_read_cluster_catalog(tmp_path / "c" / "catalog.csv"), ids, times), expected)
    with pytest.raises(MapError, match="does not describe 1 of the 4 sampled embeddings"):
        _catalog_clusters(*_read_cluster_catalog(tmp_path / "c" / "catalog.parquet"), ids,
                          times + np.array([0, 0, 0, 1]))
    capsys.readouterr()
    png = tmp_path / "map.png"
    assert main(["map", emb, "--out", str(png), "--color", "cluster", "--clusters",
                 str(tmp_path / "c" / "cat.csv")]) == 2
    assert "cat.csv does not exist; pass the catalog.csv or catalog.parquet" in capsys.readouterr().err
    # the seismic windows' ids 0-255 are in the frames' catalog too, at other times
    assert main(["map", seismic_set[1], "--out", str(png), "--color", "cluster", "--clusters",
                 str(tmp_path / "c" / "catalog.parquet"), "--sample", "100"]) == 2
    assert "made from another embeddings store" in capsys.readouterr().err and not png.exists()
    assert main(["map", emb, "--out", str(png), "--color", "cluster", "--clusters",
                 str(tmp_path / "c" / "catalog.parquet"), "--sample", "100", "--thumbnails", "5"]) == 0


def test_map_refuses_to_overwrite(aurora_set, tmp_path, capsys):
    _, emb = aurora_set
    png = tmp_path / "map.png"
    args = ["map", emb, "--out", str(png), "--color", "time", "--sample", "60", "--thumbnails", "5"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert f"{png} already exists (and 1 more of its files)" in capsys.readouterr().err
    # the PNG alone, replacing both: the earlier page (which shows another map) goes with it
    assert main([*args, "--no-html", "--overwrite"]) == 0
    assert png.exists() and not png.with_suffix(".html").exists()
    assert main(["map", emb, "--out", str(tmp_path / "map.html")]) == 2
    assert "must name the image file, e.g. map.png" in capsys.readouterr().err
    assert main(["map", emb, "--out", str(tmp_path / "m.png"), "--perplexity", "0"]) == 2
    assert "--perplexity must be > 0" in capsys.readouterr().err


def _outliers_exact_and_indexed(emb, tmp_path, top):
    """(index folder, exact catalog, catalog through a flat index): both rankings must list the same ids."""
    from spacessl.evaluate.outliers import find_outliers
    from spacessl.index.build import build_index

    idx = tmp_path / "idx"
    build_index(emb, idx, kind="flat", progress=False, workers=1)
    exact = find_outliers(emb, tmp_path / "exact", top=top, k=5, montage_n=2)
    through = find_outliers(emb, tmp_path / "index", top=top, k=5, montage_n=2, index_dir=str(idx))
    assert through.mode == "index" and exact.mode == "exact"
    a, b = read_catalog(exact.files["csv"]), read_catalog(through.files["csv"])
    assert a["id"].tolist() == b["id"].tolist()
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-5)
    np.testing.assert_allclose(a["context_distance"], b["context_distance"], atol=1e-5)
    return idx, a, b


def test_index_search_matches_exact(seismic_set, tmp_path):
    from spacessl.evaluate.propagate import propagate

    archive_url, emb = seismic_set
    idx, a, _ = _outliers_exact_and_indexed(emb, tmp_path, top=15)
    assert (a["context_distance"] == 0).all()  # windows an hour apart: no context
    labels = open_archive(archive_url).meta("label").compute()
    seeds = tmp_path / "seeds.csv"
    pd.DataFrame({"id": np.flatnonzero(labels == 1)[:4]}).to_csv(seeds, index=False)
    p1 = propagate(seeds, tmp_path / "p1", embeddings=emb)
    p2 = propagate(seeds, tmp_path / "p2", index_dir=str(idx))
    assert p1.counts == p2.counts and p1.thresholds == pytest.approx(p2.thresholds)


def test_context_term_through_the_index_matches_exact(aurora_set, tmp_path):
    from spacessl.evaluate.outliers import find_outliers

    _, emb = aurora_set
    _, a, _ = _outliers_exact_and_indexed(emb, tmp_path, top=40)
    np.testing.assert_allclose(a["score"], a["archive_distance"] + a["context_distance"], atol=1e-5)
    assert (a["context_distance"] > 0).all()  # frames 3 s apart: every frame has context
    alone = find_outliers(emb, tmp_path / "alone", top=40, k=5, montage_n=2, context=False)
    assert (read_catalog(alone.files["csv"])["context_distance"] == 0).all()
    assert "nearest same-source" not in alone.summary()


def _near_duplicate_pairs(catalog, emb_url, window_s=60.0, min_cos=0.9) -> int:
    from spacessl.embed.store import open_embeddings

    e = open_embeddings(emb_url)
    v = np.stack([e.vector(int(i)) for i in catalog["id"]])
    t = catalog["time"].astype("int64").to_numpy()
    src = catalog["source"].to_numpy()
    near = ((src[:, None] == src[None]) & (np.abs(t[:, None] - t[None]) < window_s * 1e9)
            & (v @ v.T >= min_cos))
    return int(np.triu(near, 1).sum())


def test_outlier_list_folds_near_duplicates(aurora_set, tmp_path, capsys):
    _, emb = aurora_set
    assert main(["outliers", emb, "--top", "30", "--k", "5", "--out", str(tmp_path / "f"), "--montage", "4"]) == 0
    assert "folded into the listed samples" in capsys.readouterr().out
    assert main(["outliers", emb, "--top", "30", "--k", "5", "--out", str(tmp_path / "all"), "--montage", "4",
                 "--keep-duplicates"]) == 0
    folded, every = read_catalog(tmp_path / "f" / "outliers.csv"), read_catalog(tmp_path / "all" / "outliers.csv")
    assert _near_duplicate_pairs(every, emb) > 0  # the plain ranking lists neighbouring frames of one scene
    assert _near_duplicate_pairs(folded, emb) == 0 and folded["folded"].sum() > 0
    assert folded["id"].iloc[0] == every["id"].iloc[0] and (every["folded"] == 0).all()
    assert (np.diff(folded["score"]) <= 0).all() and set(every["id"][:10]) != set(folded["id"][:10])
    from spacessl.evaluate.outliers import OutlierError, find_outliers

    with pytest.raises(OutlierError, match="fold-cos .* 1.5"):
        find_outliers(emb, tmp_path / "bad", fold_cos=1.5)
    with pytest.raises(OutlierError, match="--k 256 asks for the 256-th neighbour but .* holds 256 embeddings"):
        find_outliers(emb, tmp_path / "bad", k=256)
    assert not (tmp_path / "bad").exists()


def test_random_init_baseline_averages_the_same_views(aurora_set):
    """Embeddings stored with symmetry views get a random-init baseline embedded the same way."""
    from spacessl.embed.embedder import Embedder, build_preprocess
    from spacessl.embed.store import open_embeddings
    from spacessl.evaluate.baselines import baseline_features, random_encoder

    _, emb = aurora_set
    e = open_embeddings(emb)
    archive, info = e.archive(), dict(e.attrs["model_info"])
    ids = np.arange(0, 40, 3)
    one = baseline_features(archive, ids, info, embed_dim=e.dim, views=1)["random_init"]
    eight = baseline_features(archive, ids, info, embed_dim=e.dim, views=8)["random_init"]
    enc = random_encoder(info, modality="image", in_channels=1, embed_dim=e.dim)
    want = Embedder(enc, build_preprocess(archive, info), views=8)(archive.take(ids, fields=[]).samples)
    np.testing.assert_allclose(eight, want, atol=1e-5)
    assert np.abs(eight - one).max() > 1e-3


def test_baselines_use_the_models_recorded_stretch_and_widths(aurora_set):
    """The raw and random-init baselines are made with the model's own stretch percentiles and stage widths, as
    the embeddings record them."""
    from spacessl.augment.preprocess import Preprocess
    from spacessl.embed.store import open_embeddings
    from spacessl.evaluate.baselines import baseline_features, random_encoder, raw_features
    from spacessl.models.encoders import build_encoder

    _, emb = aurora_set
    e = open_embeddings(emb)
    archive = e.archive()
    ids = np.arange(0, 64, 4)
    samples = archive.take(ids, fields=[]).samples
    info = {**e.attrs["model_info"], "stretch": "percentile", "stretch_percentiles": [1.0, 99.9],
            "widths": [8, 16, 32, 64]}
    got = baseline_features(archive, ids, info, embed_dim=e.dim)
    want = raw_features(Preprocess.for_archive(archive, stretch="percentile", stretch_percentiles=(1.0, 99.9))(
        samples)).numpy()
    default = raw_features(Preprocess.for_archive(archive, stretch="percentile")(samples)).numpy()
    np.testing.assert_allclose(got["raw"], want, atol=1e-6)
    assert np.abs(want - default).max() > 1e-3
    shapes = {k: v.shape for k, v in random_encoder(info, modality="image", in_channels=1,
                                                    embed_dim=e.dim).state_dict().items()}
    narrow = build_encoder(info["encoder"], modality="image", in_channels=1, embed_dim=info["embed_dim"],
                           widths=[8, 16, 32, 64])
    assert shapes == {k: v.shape for k, v in narrow.state_dict().items()}
