"""Facts about each supported scene dataset: classes, counts, layouts, archives, URLs.

Class lists are in the official order (alphabetical, as the archives list them);
counts are the official per-class image counts. Sources: the dataset papers and
the archive layouts as distributed (see README, "Data").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rsdistill.registry import Registry


@dataclass(frozen=True)
class Download:
    url: str
    filename: str
    md5: str | None = None
    # Expected size in bytes, for the log and the progress bar when the server sends
    # no Content-Length (the md5 is what checks the file).
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    classes: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    # Folder prefixes (inside an extracted tree or a zip) under which the class
    # folders sit, most specific first.
    layouts: tuple[str, ...] = ()
    archives: tuple[str, ...] = ()
    downloads: tuple[Download, ...] = ()
    # Names used by published split files, e.g. torchgeo's "uc_merced-train.txt".
    split_names: tuple[str, ...] = ()
    manual_download: str = ""
    # The page to get the archive from by hand (named when a download fails).
    homepage: str = ""
    citation: str = ""

    @property
    def is_generic(self) -> bool:
        return not self.classes

    @property
    def total(self) -> int:
        return sum(self.counts.values())


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _spec(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.add(spec.name, spec)
    return spec


UCMERCED_CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
    "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
    "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
    "sparseresidential", "storagetanks", "tenniscourt",
)

EUROSAT_COUNTS = {
    "AnnualCrop": 3000, "Forest": 3000, "HerbaceousVegetation": 3000, "Highway": 2500,
    "Industrial": 2500, "Pasture": 2000, "PermanentCrop": 2500, "Residential": 3000,
    "River": 2500, "SeaLake": 3000,
}

AID_COUNTS = {
    "Airport": 360, "BareLand": 310, "BaseballField": 220, "Beach": 400, "Bridge": 360,
    "Center": 260, "Church": 240, "Commercial": 350, "DenseResidential": 410, "Desert": 300,
    "Farmland": 370, "Forest": 250, "Industrial": 390, "Meadow": 280, "MediumResidential": 290,
    "Mountain": 340, "Park": 350, "Parking": 390, "Playground": 370, "Pond": 420, "Port": 380,
    "RailwayStation": 260, "Resort": 290, "River": 410, "School": 300,
    "SparseResidential": 300, "Square": 330, "Stadium": 290, "StorageTanks": 360,
    "Viaduct": 420,
}

NWPU_CLASSES = (
    "airplane", "airport", "baseball_diamond", "basketball_court", "beach", "bridge",
    "chaparral", "church", "circular_farmland", "cloud", "commercial_area",
    "dense_residential", "desert", "forest", "freeway", "golf_course", "ground_track_field",
    "harbor", "industrial_area", "intersection", "island", "lake", "meadow",
    "medium_residential", "mobile_home_park", "mountain", "overpass", "palace",
    "parking_lot", "railway", "railway_station", "rectangular_farmland", "river",
    "roundabout", "runway", "sea_ice", "ship", "snowberg", "sparse_residential", "stadium",
    "storage_tank", "tennis_court", "terrace", "thermal_power_station", "wetland",
)

UCMERCED = _spec(DatasetSpec(
    name="ucmerced",
    title="UC Merced Land Use",
    classes=UCMERCED_CLASSES,
    counts={c: 100 for c in UCMERCED_CLASSES},
    layouts=("UCMerced_LandUse/Images", "Images"),
    archives=("UCMerced_LandUse.zip", "ucmerced.zip"),
    downloads=(
        # 332,468,434 bytes (317.07 MiB): the TensorFlow Datasets catalog's download size
        # for uc_merced, and the size of torchgeo's mirror of this zip on Hugging Face.
        Download("http://weegee.vision.ucmerced.edu/datasets/UCMerced_LandUse.zip",
                 "UCMerced_LandUse.zip", "5b7ec56793786b6dc8a908e8854ac0e4", 332_468_434),
    ),
    homepage="http://weegee.vision.ucmerced.edu/datasets/landuse.html",
    split_names=("uc_merced", "ucmerced"),
    citation="Yang & Newsam, Bag-Of-Visual-Words and Spatial Extensions for Land-Use "
             "Classification, ACM SIGSPATIAL GIS 2010",
))

EUROSAT = _spec(DatasetSpec(
    name="eurosat",
    title="EuroSAT (RGB)",
    classes=tuple(EUROSAT_COUNTS),
    counts=EUROSAT_COUNTS,
    layouts=("EuroSAT/2750", "eurosat/2750", "2750"),
    archives=("EuroSAT.zip", "eurosat.zip"),
    downloads=(
        Download("http://madm.dfki.de/files/sentinel/EuroSAT.zip",
                 "EuroSAT.zip", "c8fa014336c82ac7804f0398fcb19387"),
    ),
    homepage="https://github.com/phelber/EuroSAT",
    split_names=("eurosat",),
    citation="Helber et al., EuroSAT, IEEE JSTARS 2019",
))

AID = _spec(DatasetSpec(
    name="aid",
    title="AID (Aerial Image Dataset)",
    classes=tuple(AID_COUNTS),
    counts=AID_COUNTS,
    layouts=("AID",),
    archives=("AID.zip", "aid.zip"),
    manual_download=(
        "AID has no public direct download URL: get it from the authors' page "
        "(http://www.captain-whu.com/project/AID/)"
    ),
    homepage="http://www.captain-whu.com/project/AID/",
    split_names=("aid",),
    citation="Xia et al., AID, IEEE TGRS 55(7), 2017",
))

NWPU_RESISC45 = _spec(DatasetSpec(
    name="nwpu_resisc45",
    title="NWPU-RESISC45",
    classes=NWPU_CLASSES,
    counts={c: 700 for c in NWPU_CLASSES},
    layouts=("NWPU-RESISC45",),
    archives=("NWPU-RESISC45.zip", "nwpu_resisc45.zip"),
    downloads=(
        Download("https://hf.co/datasets/torchgeo/resisc45/resolve/main/NWPU-RESISC45.zip",
                 "NWPU-RESISC45.zip", "75206b2e16446591afa88e2628744886"),
    ),
    # The authors' page (escience.cn) is gone; the download is torchgeo's mirror.
    homepage="https://huggingface.co/datasets/torchgeo/resisc45",
    split_names=("resisc45", "nwpu_resisc45"),
    citation="Cheng, Han & Lu, Remote Sensing Image Scene Classification: Benchmark and "
             "State of the Art, Proc. IEEE 2017",
))

FOLDER = _spec(DatasetSpec(
    name="folder",
    title="class-per-folder image set",
))
