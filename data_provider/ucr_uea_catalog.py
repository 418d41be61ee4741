"""Known sizes of UCR/UEA archive datasets, used to verify downloaded (and local) files.

Each entry: DatasetInfo(n_train, n_test, length, channels, classes); length is None for
variable-length datasets (cases are padded to the longest one, so only the other sizes
are checked).

Sources (only sizes that could be checked are listed):
- UCR: the 128 datasets of the UCR archive 2018 (the TS2Vec univariate list), from the archive's
  own DataSummary.csv (two public copies that agree: sensorlab/KAN_TS and
  Chang-George-Dong/TrojanTime); "Vary" lengths -> None. The local copies of ArrowHead, Coffee,
  ECG200, ECG5000, GunPoint and ItalyPowerDemand match.
- UEA: 25 of the 30 datasets of the UEA multivariate archive 2018 (Bagnall et al. 2018):
  the 4 with local copies (AtrialFibrillation, BasicMotions, Epilepsy, JapaneseVowels, parsed
  here); 12 from a public 13-dataset benchmark table (ArticularyWordRecognition,
  EthanolConcentration, HandMovementDirection, Handwriting, Libras, LSST, NATOPS, PEMS-SF,
  PenDigits, PhonemeSpectra, RacketSports, UWaveGestureLibrary); 9 from a public 30-dataset
  appendix table whose other rows contain copy errors, kept only where they agree with the
  archive paper's table (less certain; a mismatch can be overridden, see ucr_uea.py):
  CharacterTrajectories, EigenWorms, FaceDetection, FingerMovements, MotorImagery,
  SelfRegulationSCP1/2, SpokenArabicDigits, StandWalkJump. Left out because the tables
  disagree: Cricket, DuckDuckGeese, ERing, Heartbeat, InsectWingbeat; they still load, with a
  warning.
"""
from __future__ import annotations

from typing import NamedTuple


class DatasetInfo(NamedTuple):
    n_train: int
    n_test: int
    length: int | None  # None: variable length
    channels: int
    classes: int


UCR: dict[str, DatasetInfo] = {
    "Adiac": DatasetInfo(390, 391, 176, 1, 37),
    "ArrowHead": DatasetInfo(36, 175, 251, 1, 3),
    "Beef": DatasetInfo(30, 30, 470, 1, 5),
    "BeetleFly": DatasetInfo(20, 20, 512, 1, 2),
    "BirdChicken": DatasetInfo(20, 20, 512, 1, 2),
    "Car": DatasetInfo(60, 60, 577, 1, 4),
    "CBF": DatasetInfo(30, 900, 128, 1, 3),
    "ChlorineConcentration": DatasetInfo(467, 3840, 166, 1, 3),
    "CinCECGTorso": DatasetInfo(40, 1380, 1639, 1, 4),
    "Coffee": DatasetInfo(28, 28, 286, 1, 2),
    "Computers": DatasetInfo(250, 250, 720, 1, 2),
    "CricketX": DatasetInfo(390, 390, 300, 1, 12),
    "CricketY": DatasetInfo(390, 390, 300, 1, 12),
    "CricketZ": DatasetInfo(390, 390, 300, 1, 12),
    "DiatomSizeReduction": DatasetInfo(16, 306, 345, 1, 4),
    "DistalPhalanxOutlineAgeGroup": DatasetInfo(400, 139, 80, 1, 3),
    "DistalPhalanxOutlineCorrect": DatasetInfo(600, 276, 80, 1, 2),
    "DistalPhalanxTW": DatasetInfo(400, 139, 80, 1, 6),
    "Earthquakes": DatasetInfo(322, 139, 512, 1, 2),
    "ECG200": DatasetInfo(100, 100, 96, 1, 2),
    "ECG5000": DatasetInfo(500, 4500, 140, 1, 5),
    "ECGFiveDays": DatasetInfo(23, 861, 136, 1, 2),
    "ElectricDevices": DatasetInfo(8926, 7711, 96, 1, 7),
    "FaceAll": DatasetInfo(560, 1690, 131, 1, 14),
    "FaceFour": DatasetInfo(24, 88, 350, 1, 4),
    "FacesUCR": DatasetInfo(200, 2050, 131, 1, 14),
    "FiftyWords": DatasetInfo(450, 455, 270, 1, 50),
    "Fish": DatasetInfo(175, 175, 463, 1, 7),
    "FordA": DatasetInfo(3601, 1320, 500, 1, 2),
    "FordB": DatasetInfo(3636, 810, 500, 1, 2),
    "GunPoint": DatasetInfo(50, 150, 150, 1, 2),
    "Ham": DatasetInfo(109, 105, 431, 1, 2),
    "HandOutlines": DatasetInfo(1000, 370, 2709, 1, 2),
    "Haptics": DatasetInfo(155, 308, 1092, 1, 5),
    "Herring": DatasetInfo(64, 64, 512, 1, 2),
    "InlineSkate": DatasetInfo(100, 550, 1882, 1, 7),
    "InsectWingbeatSound": DatasetInfo(220, 1980, 256, 1, 11),
    "ItalyPowerDemand": DatasetInfo(67, 1029, 24, 1, 2),
    "LargeKitchenAppliances": DatasetInfo(375, 375, 720, 1, 3),
    "Lightning2": DatasetInfo(60, 61, 637, 1, 2),
    "Lightning7": DatasetInfo(70, 73, 319, 1, 7),
    "Mallat": DatasetInfo(55, 2345, 1024, 1, 8),
    "Meat": DatasetInfo(60, 60, 448, 1, 3),
    "MedicalImages": DatasetInfo(381, 760, 99, 1, 10),
    "MiddlePhalanxOutlineAgeGroup": DatasetInfo(400, 154, 80, 1, 3),
    "MiddlePhalanxOutlineCorrect": DatasetInfo(600, 291, 80, 1, 2),
    "MiddlePhalanxTW": DatasetInfo(399, 154, 80, 1, 6),
    "MoteStrain": DatasetInfo(20, 1252, 84, 1, 2),
    "NonInvasiveFetalECGThorax1": DatasetInfo(1800, 1965, 750, 1, 42),
    "NonInvasiveFetalECGThorax2": DatasetInfo(1800, 1965, 750, 1, 42),
    "OliveOil": DatasetInfo(30, 30, 570, 1, 4),
    "OSULeaf": DatasetInfo(200, 242, 427, 1, 6),
    "PhalangesOutlinesCorrect": DatasetInfo(1800, 858, 80, 1, 2),
    "Phoneme": DatasetInfo(214, 1896, 1024, 1, 39),
    "Plane": DatasetInfo(105, 105, 144, 1, 7),
    "ProximalPhalanxOutlineAgeGroup": DatasetInfo(400, 205, 80, 1, 3),
    "ProximalPhalanxOutlineCorrect": DatasetInfo(600, 291, 80, 1, 2),
    "ProximalPhalanxTW": DatasetInfo(400, 205, 80, 1, 6),
    "RefrigerationDevices": DatasetInfo(375, 375, 720, 1, 3),
    "ScreenType": DatasetInfo(375, 375, 720, 1, 3),
    "ShapeletSim": DatasetInfo(20, 180, 500, 1, 2),
    "ShapesAll": DatasetInfo(600, 600, 512, 1, 60),
    "SmallKitchenAppliances": DatasetInfo(375, 375, 720, 1, 3),
    "SonyAIBORobotSurface1": DatasetInfo(20, 601, 70, 1, 2),
    "SonyAIBORobotSurface2": DatasetInfo(27, 953, 65, 1, 2),
    "StarLightCurves": DatasetInfo(1000, 8236, 1024, 1, 3),
    "Strawberry": DatasetInfo(613, 370, 235, 1, 2),
    "SwedishLeaf": DatasetInfo(500, 625, 128, 1, 15),
    "Symbols": DatasetInfo(25, 995, 398, 1, 6),
    "SyntheticControl": DatasetInfo(300, 300, 60, 1, 6),
    "ToeSegmentation1": DatasetInfo(40, 228, 277, 1, 2),
    "ToeSegmentation2": DatasetInfo(36, 130, 343, 1, 2),
    "Trace": DatasetInfo(100, 100, 275, 1, 4),
    "TwoLeadECG": DatasetInfo(23, 1139, 82, 1, 2),
    "TwoPatterns": DatasetInfo(1000, 4000, 128, 1, 4),
    "UWaveGestureLibraryAll": DatasetInfo(896, 3582, 945, 1, 8),
    "UWaveGestureLibraryX": DatasetInfo(896, 3582, 315, 1, 8),
    "UWaveGestureLibraryY": DatasetInfo(896, 3582, 315, 1, 8),
    "UWaveGestureLibraryZ": DatasetInfo(896, 3582, 315, 1, 8),
    "Wafer": DatasetInfo(1000, 6164, 152, 1, 2),
    "Wine": DatasetInfo(57, 54, 234, 1, 2),
    "WordSynonyms": DatasetInfo(267, 638, 270, 1, 25),
    "Worms": DatasetInfo(181, 77, 900, 1, 5),
    "WormsTwoClass": DatasetInfo(181, 77, 900, 1, 2),
    "Yoga": DatasetInfo(300, 3000, 426, 1, 2),
    "ACSF1": DatasetInfo(100, 100, 1460, 1, 10),
    "AllGestureWiimoteX": DatasetInfo(300, 700, None, 1, 10),
    "AllGestureWiimoteY": DatasetInfo(300, 700, None, 1, 10),
    "AllGestureWiimoteZ": DatasetInfo(300, 700, None, 1, 10),
    "BME": DatasetInfo(30, 150, 128, 1, 3),
    "Chinatown": DatasetInfo(20, 343, 24, 1, 2),
    "Crop": DatasetInfo(7200, 16800, 46, 1, 24),
    "DodgerLoopDay": DatasetInfo(78, 80, 288, 1, 7),
    "DodgerLoopGame": DatasetInfo(20, 138, 288, 1, 2),
    "DodgerLoopWeekend": DatasetInfo(20, 138, 288, 1, 2),
    "EOGHorizontalSignal": DatasetInfo(362, 362, 1250, 1, 12),
    "EOGVerticalSignal": DatasetInfo(362, 362, 1250, 1, 12),
    "EthanolLevel": DatasetInfo(504, 500, 1751, 1, 4),
    "FreezerRegularTrain": DatasetInfo(150, 2850, 301, 1, 2),
    "FreezerSmallTrain": DatasetInfo(28, 2850, 301, 1, 2),
    "Fungi": DatasetInfo(18, 186, 201, 1, 18),
    "GestureMidAirD1": DatasetInfo(208, 130, None, 1, 26),
    "GestureMidAirD2": DatasetInfo(208, 130, None, 1, 26),
    "GestureMidAirD3": DatasetInfo(208, 130, None, 1, 26),
    "GesturePebbleZ1": DatasetInfo(132, 172, None, 1, 6),
    "GesturePebbleZ2": DatasetInfo(146, 158, None, 1, 6),
    "GunPointAgeSpan": DatasetInfo(135, 316, 150, 1, 2),
    "GunPointMaleVersusFemale": DatasetInfo(135, 316, 150, 1, 2),
    "GunPointOldVersusYoung": DatasetInfo(136, 315, 150, 1, 2),
    "HouseTwenty": DatasetInfo(40, 119, 2000, 1, 2),
    "InsectEPGRegularTrain": DatasetInfo(62, 249, 601, 1, 3),
    "InsectEPGSmallTrain": DatasetInfo(17, 249, 601, 1, 3),
    "MelbournePedestrian": DatasetInfo(1194, 2439, 24, 1, 10),
    "MixedShapesRegularTrain": DatasetInfo(500, 2425, 1024, 1, 5),
    "MixedShapesSmallTrain": DatasetInfo(100, 2425, 1024, 1, 5),
    "PickupGestureWiimoteZ": DatasetInfo(50, 50, None, 1, 10),
    "PigAirwayPressure": DatasetInfo(104, 208, 2000, 1, 52),
    "PigArtPressure": DatasetInfo(104, 208, 2000, 1, 52),
    "PigCVP": DatasetInfo(104, 208, 2000, 1, 52),
    "PLAID": DatasetInfo(537, 537, None, 1, 11),
    "PowerCons": DatasetInfo(180, 180, 144, 1, 2),
    "Rock": DatasetInfo(20, 50, 2844, 1, 4),
    "SemgHandGenderCh2": DatasetInfo(300, 600, 1500, 1, 2),
    "SemgHandMovementCh2": DatasetInfo(450, 450, 1500, 1, 6),
    "SemgHandSubjectCh2": DatasetInfo(450, 450, 1500, 1, 5),
    "ShakeGestureWiimoteZ": DatasetInfo(50, 50, None, 1, 10),
    "SmoothSubspace": DatasetInfo(150, 150, 15, 1, 3),
    "UMD": DatasetInfo(36, 144, 150, 1, 3),
}

UEA: dict[str, DatasetInfo] = {
    "ArticularyWordRecognition": DatasetInfo(275, 300, 144, 9, 25),
    "AtrialFibrillation": DatasetInfo(15, 15, 640, 2, 3),
    "BasicMotions": DatasetInfo(40, 40, 100, 6, 4),
    "CharacterTrajectories": DatasetInfo(1422, 1436, None, 3, 20),
    "EigenWorms": DatasetInfo(128, 131, 17984, 6, 5),
    "Epilepsy": DatasetInfo(137, 138, 206, 3, 4),
    "EthanolConcentration": DatasetInfo(261, 263, 1751, 3, 4),
    "FaceDetection": DatasetInfo(5890, 3524, 62, 144, 2),
    "FingerMovements": DatasetInfo(316, 100, 50, 28, 2),
    "HandMovementDirection": DatasetInfo(160, 74, 400, 10, 4),
    "Handwriting": DatasetInfo(150, 850, 152, 3, 26),
    "JapaneseVowels": DatasetInfo(270, 370, None, 12, 9),
    "Libras": DatasetInfo(180, 180, 45, 2, 15),
    "LSST": DatasetInfo(2459, 2466, 36, 6, 14),
    "MotorImagery": DatasetInfo(278, 100, 3000, 64, 2),
    "NATOPS": DatasetInfo(180, 180, 51, 24, 6),
    "PEMS-SF": DatasetInfo(267, 173, 144, 963, 7),
    "PenDigits": DatasetInfo(7494, 3498, 8, 2, 10),
    "PhonemeSpectra": DatasetInfo(3315, 3353, 217, 11, 39),
    "RacketSports": DatasetInfo(151, 152, 30, 6, 4),
    "SelfRegulationSCP1": DatasetInfo(268, 293, 896, 6, 2),
    "SelfRegulationSCP2": DatasetInfo(200, 180, 1152, 7, 2),
    "SpokenArabicDigits": DatasetInfo(6599, 2199, None, 13, 10),
    "StandWalkJump": DatasetInfo(12, 15, 2500, 4, 3),
    "UWaveGestureLibrary": DatasetInfo(120, 320, 315, 3, 8),
}

CATALOGS = {"UCR": UCR, "UEA": UEA}


def lookup(archive: str, name: str) -> DatasetInfo | None:
    return CATALOGS.get(archive.upper(), {}).get(name)


def check(info: DatasetInfo, n_train: int, n_test: int, length: int, channels: int,
          classes: int) -> list[str]:
    """Differences between the parsed sizes and the catalog (empty list = all match)."""
    got = {"n_train": n_train, "n_test": n_test, "length": length, "channels": channels,
           "classes": classes}
    problems = []
    for key, value in got.items():
        expected = getattr(info, key)
        if expected is not None and expected != value:
            problems.append(f"{key}={value} (expected {expected})")
    return problems
