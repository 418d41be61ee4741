"""Explanations for 1-D classifiers: CAM, Grad-CAM, Guided Backprop, Guided Grad-CAM,
deletion-curve faithfulness and per-class saliency profiles (figures: utils.explain.plots,
imported on demand because it loads matplotlib)."""
from .cam import NotCAMCompatible, cam, check_cam_structure
from .common import per_step
from .deletion import curve_auc, deletion_curve, deletion_order, random_order
from .gradcam import default_layer, get_layer, gradcam
from .guided_backprop import NoReLUModules, guided_backprop, guided_gradcam
from .profiles import class_profiles, normalize_maps

__all__ = ["NotCAMCompatible", "cam", "check_cam_structure", "per_step", "curve_auc",
           "deletion_curve", "deletion_order", "random_order", "default_layer", "get_layer",
           "gradcam", "NoReLUModules", "guided_backprop", "guided_gradcam", "class_profiles",
           "normalize_maps"]
