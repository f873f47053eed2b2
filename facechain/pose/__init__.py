"""Pose control: OpenPose-style conditioning images for ``generate --pose`` and ``inpaint``.

* :mod:`.skeleton` – the 18-point OpenPose body, its limbs and colours; :class:`BodyPose`;
* :mod:`.draw` – :func:`draw_openpose` (bodies, 68-point faces, hands) as the ControlNet saw them;
* :mod:`.estimate` – :class:`BodyPoseEstimator`, offline BlazePose under ai-edge-litert;
* :mod:`.condition` – :func:`pose_condition_from_image`, :func:`looks_like_openpose`,
  :func:`face_landmark_condition`.

The estimator is imported lazily (it needs the TFLite runtime and the model files).
"""

from .condition import face_landmark_condition, looks_like_openpose, pose_condition_from_image
from .draw import draw_openpose
from .skeleton import KEYPOINT_NAMES, BodyPose

__all__ = [
    "KEYPOINT_NAMES", "BodyPose", "BodyPoseEstimator", "draw_openpose", "face_landmark_condition",
    "get_body_pose_estimator", "looks_like_openpose", "pose_condition_from_image",
]


def __getattr__(name: str):
    if name in ("BodyPoseEstimator", "get_body_pose_estimator"):
        from . import estimate

        return getattr(estimate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
