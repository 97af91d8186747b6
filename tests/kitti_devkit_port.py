"""A line-by-line port of the 2D-box part of KITTI's devkit (`cpp/evaluate_object.cpp`:
`cleanData`, `computeStatistics`, `getThresholds`, `eval_class`, and the AP|R40 sum), kept in
the tests as the reference that `kitti_pipeline.detect.kitti` is held equal to. Loops and
names follow the C++; nothing here is shared with the library."""

N_SAMPLE_PTS = 41
MIN_HEIGHT = (40, 25, 25)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
DIFFICULTY = {"easy": 0, "moderate": 1, "hard": 2}
NO_DETECTION = -10000000.0


def boxoverlap(a, b, criterion=-1):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    w, h = x2 - x1, y2 - y1
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    a_area = (a[2] - a[0]) * (a[3] - a[1])
    b_area = (b[2] - b[0]) * (b[3] - b[1])
    if criterion == -1:
        return inter / (a_area + b_area - inter)
    if criterion == 0:
        return inter / a_area
    return inter / b_area


def clean_data(gt, det, current_class, difficulty):
    """gt: (type, truncation, occlusion, box) per object; det: (type, score, box)."""
    ignored_gt, dc, ignored_det, n_gt = [], [], [], 0
    for kind, truncation, occlusion, box in gt:
        height = box[3] - box[1]
        if kind.lower() == current_class.lower():
            valid_class = 1
        elif (current_class == "Pedestrian" and kind.lower() == "person_sitting") or (
            current_class == "Car" and kind.lower() == "van"
        ):
            valid_class = 0  # the neighbouring class
        else:
            valid_class = -1
        ignore = (
            occlusion > MAX_OCCLUSION[difficulty]
            or truncation > MAX_TRUNCATION[difficulty]
            or height <= MIN_HEIGHT[difficulty]
        )
        if valid_class == 1 and not ignore:
            ignored_gt.append(0)
            n_gt += 1
        elif valid_class == 0 or (ignore and valid_class == 1):
            ignored_gt.append(1)
        else:
            ignored_gt.append(-1)
    for kind, _, _, box in gt:
        if kind.lower() == "dontcare":
            dc.append(box)
    for kind, _, box in det:
        valid_class = 1 if kind.lower() == current_class.lower() else -1
        height = abs(box[1] - box[3])
        if height < MIN_HEIGHT[difficulty]:
            ignored_det.append(1)
        elif valid_class == 1:
            ignored_det.append(0)
        else:
            ignored_det.append(-1)
    return ignored_gt, dc, ignored_det, n_gt


def compute_statistics(gt, det, dc, ignored_gt, ignored_det, compute_fp, min_overlap, thresh=0):
    tp = fp = fn = 0
    v = []
    assigned_detection = [False] * len(det)
    ignored_threshold = [False] * len(det)
    if compute_fp:
        for i in range(len(det)):
            if det[i][1] < thresh:
                ignored_threshold[i] = True
    for i in range(len(gt)):
        if ignored_gt[i] == -1:
            continue
        det_idx = -1
        valid_detection = NO_DETECTION
        max_iou = 0.0
        assigned_ignored_det = False
        for j in range(len(det)):
            if ignored_det[j] == -1 or assigned_detection[j] or ignored_threshold[j]:
                continue
            overlap = boxoverlap(det[j][2], gt[i][3], -1)
            if not compute_fp and overlap > min_overlap and det[j][1] > valid_detection:
                det_idx = j
                valid_detection = det[j][1]
            elif (
                compute_fp
                and overlap > min_overlap
                and (overlap > max_iou or assigned_ignored_det)
                and ignored_det[j] == 0
            ):
                max_iou = overlap
                det_idx = j
                valid_detection = 1
                assigned_ignored_det = False
            elif (
                compute_fp
                and overlap > min_overlap
                and valid_detection == NO_DETECTION
                and ignored_det[j] == 1
            ):
                det_idx = j
                valid_detection = 1
                assigned_ignored_det = True
        if valid_detection == NO_DETECTION and ignored_gt[i] == 0:
            fn += 1
        elif valid_detection != NO_DETECTION and (ignored_gt[i] == 1 or ignored_det[det_idx] == 1):
            assigned_detection[det_idx] = True
        elif valid_detection != NO_DETECTION:
            tp += 1
            v.append(det[det_idx][1])
            assigned_detection[det_idx] = True
    if compute_fp:
        for i in range(len(det)):
            if not (
                assigned_detection[i]
                or ignored_det[i] == -1
                or ignored_det[i] == 1
                or ignored_threshold[i]
            ):
                fp += 1
        nstuff = 0
        for box in dc:
            for j in range(len(det)):
                if assigned_detection[j] or ignored_det[j] in (-1, 1) or ignored_threshold[j]:
                    continue
                if boxoverlap(det[j][2], box, 0) > min_overlap:
                    assigned_detection[j] = True
                    nstuff += 1
        fp -= nstuff
    return tp, fp, fn, v


def get_thresholds(v, n_groundtruth):
    v = sorted(v, reverse=True)
    t = []
    current_recall = 0.0
    for i in range(len(v)):
        l_recall = (i + 1) / n_groundtruth
        r_recall = (i + 2) / n_groundtruth if i < len(v) - 1 else l_recall
        if (r_recall - current_recall) < (current_recall - l_recall) and i < len(v) - 1:
            continue
        t.append(v[i])
        current_recall += 1.0 / (N_SAMPLE_PTS - 1.0)
    return t


def eval_class(groundtruth, detections, current_class, level, min_overlap):
    """AP|R40 of `current_class` at `level` over frames of (gt, det) lists."""
    difficulty = DIFFICULTY[level]
    cleaned, v, n_gt = [], [], 0
    for gt, det in zip(groundtruth, detections, strict=True):
        i_gt, dc, i_det, n = clean_data(gt, det, current_class, difficulty)
        n_gt += n
        cleaned.append((i_gt, dc, i_det))
        v += compute_statistics(gt, det, dc, i_gt, i_det, False, min_overlap)[3]
    if n_gt == 0:
        return 0.0
    thresholds = get_thresholds(v, n_gt)
    pr = [[0, 0, 0] for _ in thresholds]
    for (gt, det), (i_gt, dc, i_det) in zip(
        zip(groundtruth, detections, strict=True), cleaned, strict=True
    ):
        for t, thresh in enumerate(thresholds):
            tp, fp, fn, _ = compute_statistics(gt, det, dc, i_gt, i_det, True, min_overlap, thresh)
            pr[t][0] += tp
            pr[t][1] += fp
            pr[t][2] += fn
    precision = [0.0] * N_SAMPLE_PTS
    count = min(len(thresholds), N_SAMPLE_PTS)  # C++ would write past its 41 entries
    for i in range(count):
        precision[i] = pr[i][0] / (pr[i][0] + pr[i][1])
    for i in range(count):
        precision[i] = max(precision[i:])
    return sum(precision[1:]) / 40
