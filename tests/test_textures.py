"""UV textures against a known truth: faces whose colour at every surface point is a known image.

A synthetic face (the small model, known coefficients) is rendered with the
renderer interpolating each surface point's (u, v), and each pixel takes the
known texture's colour there: a photo whose true texture is known. Baking it
back must give that texture in the texels the photo sees; rendering the
textured mesh with the photo's pose must give the photo back; three views
merged must see more of the face than one, as well.
"""
import numpy as np
import pytest

from tests.synthetic_textures import (
    IDENTITY_ALIGNMENT,
    known_texture,
    psnr,
    sample,
    textured_photos,
)

SIZE = 512


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import load_data
    from face_decoder import Face3D
    from networks.reconstructor import Reconstructor
    from tests.synthetic_assets import write_bfm09, write_uv
    from texture.atlas import Atlas

    bfm = tmp_path_factory.mktemp("uv_bfm")
    write_uv(bfm, write_bfm09(bfm, seed=3))
    load_data.transferBFM09(bfm)
    front = bfm / "BFM_model_front.mat"
    atlas = Atlas.load(bfm, load_data.load_front_model(front))
    reconstructor = Reconstructor(None, front, texture=True)
    yield {"bfm": bfm, "atlas": atlas, "reconstructor": reconstructor, "face": Face3D(front)}
    reconstructor.close()


def photo_of(world, yaw, truth):
    """A 224x224 photo of the face at `yaw` radians whose colour comes from `truth`.

    Returns:
      (photo uint8 [224, 224, 3], the reconstruction's dict for the face, the
      identity alignment [5], the covered pixels [224, 224]).
    """
    from facemodel.coefficients import BLOCKS

    coeff = np.zeros((1, 257), np.float32)
    identity = BLOCKS["identity"]              # a smooth face: small identity
    coeff[0, identity] = np.random.default_rng(1).normal(0, 0.2, identity.stop - identity.start)
    coeff[0, BLOCKS["angles"].start + 1] = yaw
    photos, results, covered = textured_photos(world["face"], world["reconstructor"],
                                               world["atlas"].uv, coeff, truth)
    return photos[0], results[0], IDENTITY_ALIGNMENT, covered[0]


def bake(world, photo, result, trans_params, size=SIZE):
    from texture.bake import bake_photo

    return bake_photo(world["atlas"].texel_map(size), photo, trans_params, result["face_shape"],
                      result["face_norm"], result["depth"], result["face_color"])


def texel_truth(world, truth, size=SIZE):
    texel_map = world["atlas"].texel_map(size)
    return sample(truth, texel_map.texel_uv()[None])[0]


def test_seen_texels_are_the_known_texture(world):
    from texture.bake import TextureSum

    truth = known_texture(SIZE)
    photo, result, params, _ = photo_of(world, 0.0, truth)
    colours, weights, model = bake(world, photo, result, params)
    seen = weights > 0
    assert seen.mean() > 0.5                                   # a frontal face: most of it
    value = psnr(colours[seen], texel_truth(world, truth)[seen])
    assert value >= 30.0, value
    total = TextureSum(world["atlas"].texel_map(SIZE))
    total.add(colours, weights, model)
    texture, mask = total.finish()
    texel_map = world["atlas"].texel_map(SIZE)
    rows, cols = np.divmod(texel_map.texels[seen], SIZE)
    assert np.all(mask[rows, cols] == 255)
    np.testing.assert_allclose(texture[rows, cols], np.rint(colours[seen]), atol=1)


def test_the_textured_mesh_rendered_with_the_photos_pose_gives_the_photo_back(world):
    from texture.bake import TextureSum

    truth = known_texture(SIZE)
    photo, result, params, covered = photo_of(world, 0.2, truth)
    total = TextureSum(world["atlas"].texel_map(SIZE))
    total.add(*bake(world, photo, result, params))
    texture, mask = total.finish()
    again, _, _, _ = photo_of(world, 0.2, texture)            # the mesh with its texture
    value = psnr(again[covered], photo[covered])
    assert value >= 30.0, value


def test_three_views_cover_more_than_one_and_lose_nothing(world):
    from texture.bake import TextureSum

    truth = known_texture(SIZE)
    texel_map = world["atlas"].texel_map(SIZE)
    expected = texel_truth(world, truth)
    totals, single = TextureSum(texel_map), None
    for yaw in (1.0, -1.0, 0.0):                  # the single view: turned by 57 degrees
        photo, result, params, _ = photo_of(world, yaw, truth)
        baked = bake(world, photo, result, params)
        totals.add(*baked)
        if single is None:
            single = TextureSum(texel_map)
            single.add(*baked)
    assert totals.coverage() > single.coverage() + 0.05, (totals.coverage(), single.coverage())
    merged_seen, single_seen = totals.weight > 0, single.weight > 0
    merged = totals.colour[merged_seen] / totals.weight[merged_seen, None]
    one = single.colour[single_seen] / single.weight[single_seen, None]
    assert psnr(merged, expected[merged_seen]) >= psnr(one, expected[single_seen]) - 0.5


def test_an_occluded_texel_is_not_taken(world):
    """A turned face hides part of itself: those texels are not seen, by the renderer's depth."""
    truth = known_texture(SIZE)
    photo, result, params, _ = photo_of(world, 1.2, truth)      # about 70 degrees
    _, weights, _ = bake(world, photo, result, params)
    frontal_photo, frontal, frontal_params, _ = photo_of(world, 0.0, truth)
    _, frontal_weights, _ = bake(world, frontal_photo, frontal, frontal_params)
    assert (weights > 0).mean() < 0.8 * (frontal_weights > 0).mean()
