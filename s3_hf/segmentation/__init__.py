"""Open-vocabulary semantic segmentation with synonym spaces: every patch of an image is scored against the class
spaces by the same engine, metrics and spaces that classify images.

An image is resized to a short side of ``short_side`` pixels and normalised as the model's preprocessing does;
windows of ``window`` pixels every ``stride`` pixels go through the vision tower with its last block replaced by a
dense variant (:mod:`s3_hf.models.dense`); each patch feature is scored with :meth:`S3Engine.scores` (the logits of the
requested metric, ``τ · s_c(v) + b``); patch logits are upsampled bilinearly to the window and averaged where
windows overlap (the working resolution), then upsampled to the image's full size a chunk of classes at a time.
The label map is the per-pixel argmax; a pixel whose top probability (softmax over classes) is below
``background_threshold`` goes to the class named ``background``.

With one name per class and metric ``label`` this is the base segmenter's own scoring; with several names per class
(a space of names, no pruning) and ``nearest_point`` it is the "max over names" rule of SCLIP and NACLIP; S^3
replaces that max with a point-to-space score.

Modules, in the order an image goes through them: :mod:`~s3_hf.segmentation.options` (the option record and size
checks), :mod:`~s3_hf.segmentation.logits` (pixels, windows, per-pixel logits), :mod:`~s3_hf.segmentation.upsample`
(full size a chunk of classes at a time), :mod:`~s3_hf.segmentation.label_maps` (argmax, background, masks),
:mod:`~s3_hf.segmentation.names` (class-name files and the references' multi-name rule),
:mod:`~s3_hf.segmentation.pamr` (PAMR refinement), :mod:`~s3_hf.segmentation.protocols` (the references' presets,
importable without torch) and :mod:`~s3_hf.segmentation.render` (index images, palette, overlay).
"""
