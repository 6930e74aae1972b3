"""MovieLens-100K as arrays and as a click-like stream, read from the ``recbole==1.2.1`` wheel.

The data (100,000 ratings of 1682 films by 943 users, September 1997 to April 1998) ships inside
the installed wheel as RecBole's atomic files: ``ml-100k.inter`` (user, item, rating 1-5, Unix
time), ``ml-100k.user`` (age, gender, occupation, zip code) and ``ml-100k.item`` (title, release
year, genres).  Nothing is downloaded; RecBole itself is never imported (only its data folder is
located), so its dependencies need not be installed.

``load_movielens()`` returns a ``MovieLens``: the ratings sorted by time (a *stable* sort, so
ratings with the same second keep their order in the file), users and items as indices
``0..n-1`` into the user and item tables (in the tables' file order; ``user_ids[u]`` and
``item_ids[i]`` are the original ids), and the tables themselves.  Its arrays are read-only (one
copy is cached per process).  Release years are ``NaN`` where the file has none (2 items).  Genres
are a multi-hot ``(1682, 19)`` matrix over ``GENRES``, MovieLens's own order; every item's genres
are listed in that order, so its first listed genre (``first_genre``) is its lowest column.

``MovieLens.click_stream()`` replays the ratings in time order as ``(x, y)`` records for a
click-through-rate model: the label is "liked", ``y = rating >= 4`` (55.375% of ratings), and
``x`` holds the fields of ``CLICK_FIELDS``, all categorical except ``genres`` (multi-valued)::

    user, item       the original ids (int)
    age              MovieLens-1M's age bucket: "<18", "18-24", "25-34", "35-44", "45-49",
                     "50-55", "56+"
    gender, occupation   as in the user table ("M"/"F"; 21 occupations)
    zip              the zip code's first character (a US region digit; a letter for the few
                     Canadian codes)
    decade           the release decade ("1990s"), "unknown" without a year
    genres           the item's genre names (a tuple, one to six of them)
    hour, weekday    hour of day 0-23 and weekday 0-6 (Monday = 0) of the rating, in UTC (the
                     data carries no time zone)

``USER_FIELDS`` and ``ITEM_FIELDS`` group them by what they describe.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
AGE_EDGES = (18, 25, 35, 45, 50, 56)
AGE_BUCKETS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
CLICK_FIELDS = {"user": "cat", "item": "cat", "age": "cat", "gender": "cat", "occupation": "cat",
                "zip": "cat", "decade": "cat", "genres": "multi", "hour": "cat", "weekday": "cat"}
USER_FIELDS = ("user", "age", "gender", "occupation", "zip")
ITEM_FIELDS = ("item", "decade", "genres")
INSTALL = "pip install --no-deps recbole==1.2.1"


def data_folder() -> Path:
    """The ``ml-100k`` folder inside the installed recbole wheel (a ``FileNotFoundError`` saying
    what to install when it is missing)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"MovieLens-100K is read from the recbole wheel, which is not "
                                f"installed: {INSTALL}")
    folder = Path(spec.origin).parent / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file():
        raise FileNotFoundError(f"no MovieLens-100K files in {folder}: {INSTALL}")
    return folder


def _table(path: Path) -> dict[str, list[str]]:
    """A RecBole atomic file as columns of strings, keyed by name (the ``:type`` dropped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    names = [h.split(":")[0] for h in lines[0].split("\t")]
    rows = [line.split("\t") for line in lines[1:] if line]
    bad = next((k for k, r in enumerate(rows) if len(r) != len(names)), None)
    if bad is not None:
        raise ValueError(f"{path.name} line {bad + 2}: expected {len(names)} tab-separated "
                         f"fields {names}, got {len(rows[bad])}")
    return {n: [r[j] for r in rows] for j, n in enumerate(names)}


def age_bucket(age: int) -> str:
    """MovieLens-1M's age group of ``age``."""
    return AGE_BUCKETS[int(np.searchsorted(AGE_EDGES, age, side="right"))]


def _frozen(**arrays: np.ndarray) -> dict[str, Any]:
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


@dataclass(frozen=True)
class MovieLens:
    # the ratings, in time order
    users_of_ratings: np.ndarray  # (n,) int64 user index
    items_of_ratings: np.ndarray  # (n,) int64 item index
    ratings: np.ndarray  # (n,) float64, 1-5
    timestamps: np.ndarray  # (n,) int64 Unix seconds
    # the user table, by user index
    user_ids: np.ndarray  # (943,) int64 original ids
    age: np.ndarray  # (943,) int64 years
    gender: np.ndarray  # (943,) str "M" / "F"
    occupation: np.ndarray  # (943,) str
    zip_code: np.ndarray  # (943,) str, as in the file
    # the item table, by item index
    item_ids: np.ndarray  # (1682,) int64 original ids
    titles: np.ndarray  # (1682,) str
    year: np.ndarray  # (1682,) float64 release year, NaN unknown
    genre: np.ndarray  # (1682, 19) bool multi-hot over ``genres``
    genres: tuple[str, ...] = GENRES

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def zip_prefix(self) -> np.ndarray:
        """The first character of each user's zip code."""
        return np.array([z[:1] for z in self.zip_code])

    @property
    def age_bucket(self) -> np.ndarray:
        return np.array([age_bucket(int(a)) for a in self.age])

    @property
    def decade(self) -> np.ndarray:
        return np.array(["unknown" if np.isnan(y) else f"{int(y) // 10 * 10}s"
                         for y in self.year])

    @property
    def first_genre(self) -> np.ndarray:
        """Each item's first listed genre, as a column of ``genre``."""
        return np.argmax(self.genre, axis=1)

    @property
    def liked(self) -> np.ndarray:
        """The click-like label of each rating: ``rating >= 4``."""
        return self.ratings >= 4

    def click_stream(self, limit: int | None = None) -> ClickStream:
        """The ratings in time order as ``(x, y)`` records (see the module docstring)."""
        return ClickStream(self, limit)


class ClickStream:
    """An iterable of ``(x, y)`` with a length (so evaluators can show progress)."""

    def __init__(self, ml: MovieLens, limit: int | None = None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ValueError(f"expected limit None or an int >= 0, got {limit!r}")
        self.ml = ml
        self.n = len(ml.ratings) if limit is None else min(limit, len(ml.ratings))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[dict[str, Any], bool]]:
        ml = self.ml
        users = [{"user": int(i), "age": str(a), "gender": str(g), "occupation": str(o),
                  "zip": str(z)} for i, a, g, o, z in zip(ml.user_ids, ml.age_bucket, ml.gender,
                                                          ml.occupation, ml.zip_prefix)]
        names = np.array(ml.genres)
        items = [{"item": int(i), "decade": str(d), "genres": tuple(names[row].tolist())}
                 for i, d, row in zip(ml.item_ids, ml.decade, ml.genre)]
        t = ml.timestamps[: self.n]
        hours = ((t // 3600) % 24).tolist()
        weekdays = ((t // 86400 + 3) % 7).tolist()  # 1970-01-01 was a Thursday
        liked = ml.liked[: self.n].tolist()
        for u, i, h, w, y in zip(ml.users_of_ratings[: self.n].tolist(),
                                 ml.items_of_ratings[: self.n].tolist(), hours, weekdays, liked):
            yield {**users[u], **items[i], "hour": h, "weekday": w}, y


@functools.lru_cache(maxsize=4)
def _load(folder: Path) -> MovieLens:
    inter, user, item = (_table(folder / f"ml-100k.{k}") for k in ("inter", "user", "item"))
    user_row = {u: k for k, u in enumerate(user["user_id"])}
    item_row = {i: k for k, i in enumerate(item["item_id"])}
    missing = [(n, v) for n, col, rows in (("user", inter["user_id"], user_row),
                                           ("item", inter["item_id"], item_row))
               for v in col if v not in rows][:3]
    if missing:
        raise ValueError(f"ratings refer to ids the tables lack: {missing}")
    t = np.array([int(float(s)) for s in inter["timestamp"]], dtype=np.int64)
    order = np.argsort(t, kind="stable")  # ties keep file order
    column = {g: k for k, g in enumerate(GENRES)}
    genre = np.zeros((len(item_row), len(GENRES)), dtype=bool)
    for k, gs in enumerate(item["class"]):
        for g in gs.split():
            if g not in column:
                raise ValueError(f"item {item['item_id'][k]}: unknown genre {g!r}")
            genre[k, column[g]] = True
    year = np.array([float(y) if y.isdigit() else np.nan for y in item["release_year"]])
    arrays = _frozen(
        users_of_ratings=np.array([user_row[u] for u in inter["user_id"]], np.int64)[order],
        items_of_ratings=np.array([item_row[i] for i in inter["item_id"]], np.int64)[order],
        ratings=np.array(inter["rating"], dtype=np.float64)[order],
        timestamps=t[order],
        user_ids=np.array(user["user_id"], dtype=np.int64),
        age=np.array(user["age"], dtype=np.int64),
        gender=np.array(user["gender"]), occupation=np.array(user["occupation"]),
        zip_code=np.array(user["zip_code"]),
        item_ids=np.array(item["item_id"], dtype=np.int64),
        titles=np.array(item["movie_title"]), year=year, genre=genre)
    return MovieLens(**arrays, genres=GENRES)


def load_movielens() -> MovieLens:
    """MovieLens-100K from the installed recbole wheel (read once per process)."""
    return _load(data_folder())
