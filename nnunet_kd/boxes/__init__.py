"""Axial bounding boxes and the box-guided teacher's inputs and outputs.

- :mod:`.axial_boxes`: boxes from label maps and box masks, rasterisation, the axial axis after nnU-Net's transpose;
- :mod:`.augmentation`: exact boxes made to look like real annotations (margins, shifts, dropped slices, lesions);
- :mod:`.channel`: the box channel on nnU-Net's cascade input path (training transforms, preprocessed box files);
- :mod:`.cascade_configuration`: the plans configuration that declares the boxes as nnU-Net's previous stage;
- :mod:`.inputs`: box masks checked against their images before a model sees them;
- :mod:`.prediction` and :mod:`.constraint`: box-guided prediction of a folder, optionally constrained to the boxes;
- :mod:`.coarse_labels`: filled-box labels for the box-supervised baseline teacher.

This ``__init__`` imports nothing: import from the modules.
"""
