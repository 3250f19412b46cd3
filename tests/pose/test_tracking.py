"""The main-subject rule: link people into tracks, keep the one with the largest moving
presence, zero rows where it is missed."""

import numpy as np

from lbp_motion.pose.base import PersonPose
from lbp_motion.pose.tracking import TRACKING_RULE, link_tracks, main_subject
from tests.pose.conftest import person


def _frames(n, fps=30.0):
    return np.arange(n) / fps


def test_the_walker_is_kept_over_a_larger_bystander_standing_still():
    # a bystander standing at x=100, taller than the walker, and a walker crossing
    detections = [
        [person(100, 400, height=260), person(300 + 12 * t, 420, height=200)] for t in range(40)
    ]
    detections[5] = [person(100, 400, height=260)]  # the walker is missed once
    tracks = link_tracks(detections, _frames(40))
    assert sorted(len(t.frames) for t in tracks) == [39, 40]
    subject = main_subject(detections, 17, _frames(40))
    assert subject.keypoints[0, 11, 0] == person(300, 420)[11, 0]
    assert subject.keypoints[39, 11, 0] == person(300 + 12 * 39, 420)[11, 0]
    assert (subject.keypoints[5] == 0).all()  # the missed frame keeps its place as a zero row
    assert subject.detected.sum() == 39 and subject.num_tracks == 2
    assert "moving-presence" in TRACKING_RULE


def test_without_movement_the_largest_most_present_person_is_kept():
    detections = [[person(100, 400, height=150), person(600, 400, height=300)] for _ in range(20)]
    subject = main_subject(detections, 17, _frames(20))
    assert np.allclose(subject.keypoints[:, 11, 0], person(600, 400, height=300)[11, 0])


def test_people_are_not_linked_across_the_image():
    # one person on the left, then (after a gap) someone else far right: two tracks
    detections = (
        [[person(100, 400)] for _ in range(10)]
        + [[] for _ in range(3)]
        + [[person(900, 400)] for _ in range(10)]
    )
    tracks = link_tracks(detections, _frames(23))
    assert len(tracks) == 2
    # but the same person after a short gap continues their track
    detections = (
        [[person(100 + 5 * t, 400)] for t in range(10)]
        + [[]] * 3
        + [[person(165 + 5 * t, 400)] for t in range(10)]
    )
    assert len(link_tracks(detections, _frames(23))) == 1


def test_tracks_end_after_the_gap_limit():
    detections = (
        [[person(100, 400)] for _ in range(5)]
        + [[] for _ in range(45)]
        + [[person(100, 400)] for _ in range(5)]
    )
    assert len(link_tracks(detections, _frames(55), max_gap_s=1.0)) == 2
    assert len(link_tracks(detections, _frames(55), max_gap_s=2.0)) == 1


def test_nobody_gives_zero_rows_and_plain_arrays_are_accepted():
    subject = main_subject([[], [], []], 17)
    assert (
        subject.keypoints.shape == (3, 17, 3)
        and not subject.keypoints.any()
        and subject.track is None
    )
    subject = main_subject(
        [[person(10, 10)], [person(11, 10)]], 17
    )  # (J, 3) arrays, not PersonPose
    assert subject.detected.all()


def test_person_pose_box_from_keypoints():
    kp = person(100, 200, height=100)
    full = PersonPose(kp.copy(), "coco17").bounding_box()
    assert full[3] == kp[:, 1].max()
    kp[15:, 2] = 0.0  # missing ankles are not part of the box
    box = PersonPose(kp, "coco17").bounding_box()
    assert box[3] == kp[13, 1] < full[3]
