"""The demo's files of one reconstructed photo, and of an image set, each written atomically.

NAME.mat holds the release's keys (docs/model.md#demo-files) and the
alignment's `trans_params`, which the release kept only in memory; a fit adds the
network's own coefficients (`coeff_network`, when a network ran) and the
final value of each loss term (`loss_photo`, `loss_landmark`, ...). An image
set's SET_set.mat holds the identity and albedo its photos share and the
names of those photos.
"""
import numpy as np

from facemodel.coefficients import mean_identity
from fileio import result_files
from photos.inputs import DEFAULT_OUTPUTS, output_files


def write_outputs(photo, result, output_dir, triangles, outputs=DEFAULT_OUTPUTS, model=None,
                  textures=None):
    """Writes the chosen files of one photo, each atomically.

    Args:
      photo: the `preparation.photo.PreparedPhoto`.
      result: the photo's slice of the reconstruction's dict
        (`Reconstructor.__call__`'s keys; with a fit also "coeff_network"
        and "loss_*").
      output_dir: the output folder.
      triangles: [F,3] 1-based triangles of the front face model.
      outputs: the kinds to write, a subset of OUTPUT_KINDS.
      model: `networks.files.model_record` of the network that made them
        (written into NAME.mat), or None.
      textures: with "uv", a `TextureWriter`.
    """
    files = output_files(output_dir, photo.name, outputs)
    if "obj" in outputs:
        write_mesh(files["obj"][0], result, triangles)
    if "lm5" in outputs:
        result_files.write_landmarks(files["lm5"][0], photo.lm5_image)
    if "vis" in outputs:
        write_preview(files["vis"][0], photo, result)
    if "uv" in outputs:
        textures.write_photo(files["uv"], photo, result)
    if "mat" in outputs:
        # Written last: its presence with the others marks the photo as done.
        write_mat(files["mat"][0], photo, result, model)


def write_mesh(path, result, triangles):
    """NAME_mesh.obj: posed vertices with clip(face_color, 0, 255)/255 colours."""
    result_files.save_obj(path, result["face_shape"], triangles,
                          np.clip(result["face_color"], 0, 255) / 255.0)


def write_mat(path, photo, result, model=None):
    """NAME.mat with the release's keys (docs/model.md#demo-files), and a fit's."""
    variables = {
        "cropped_img": photo.crop_rgb,
        "recon_img": np.asarray(result["recon_img"], np.float32),
        "coeff": result["coeff"][None].astype(np.float32),
        "face_shape": result["face_shape"],
        "face_texture": result["face_texture"],
        "face_color": result["face_color"],
        "lm_68p": result["lm_68p"],
        "lm_5p": photo.lm5_crop,
        # Not in the release's file: the alignment, so that crop points map
        # back to the photo (preprocess_img.map_to_original).
        "trans_params": np.asarray(photo.trans_params, np.float64)[None],
    }
    variables.update(model or {})        # which network: "model", "model_kind"
    if "coeff_network" in result:
        variables["coeff_network"] = np.asarray(result["coeff_network"], np.float32)[None]
    for key, value in result.items():
        if key.startswith("loss_"):
            variables[key] = np.float64(value)
    result_files.write_mat(path, variables)


def write_set(path, coeff, names, refined):
    """SET_set.mat: the identity and albedo an image set's photos share.

    Args:
      path: the file.
      coeff: [K, 257] the photos' coefficients (after a joint fit, their
        identity and albedo rows are one value; else the network's).
      names: the photos (file names) they come from.
      refined: True when fitted jointly, False for the mean of the network's.
    """
    id_coeff, tex_coeff = mean_identity(coeff)
    result_files.write_mat(path, {
        "id_coeff": np.asarray(id_coeff, np.float32).reshape(1, -1),
        "tex_coeff": np.asarray(tex_coeff, np.float32).reshape(1, -1),
        "photos": np.array(list(names), dtype=object).reshape(-1, 1),
        "method": "joint fit" if refined else "mean of the network's",
    })


def write_preview(path, photo, result):
    """NAME_vis.png: see `preview`."""
    result_files.write_png(path, preview(photo, result))


def preview(photo, result):
    """NAME_vis.png's picture: see `fileio.preview.side_by_side`."""
    from fileio.preview import side_by_side

    return side_by_side(photo.crop_rgb, result["recon_img"], result["lm_68p"], photo.lm5_crop)


class TextureWriter:
    """Writes UV textures (docs/textures.md): one photo's, and an image set's merged one.

    Args:
      atlas: the UV layout (`texture.atlas.Atlas`).
      size: the textures' side, texels (`--uv-size`).
      front_model: the front model's arrays (a set's neutral mesh).
      merge: add every photo written to one texture (an image set's).
    """

    def __init__(self, atlas, size, front_model, merge=False):
        from texture.bake import TextureSum

        self.atlas = atlas
        self.texel_map = atlas.texel_map(size)
        self.front_model = front_model
        self.triangles = np.asarray(front_model["tri"], np.int64)
        self.merged = TextureSum(self.texel_map) if merge else None

    def write_photo(self, paths, photo, result):
        """NAME_uv.png, NAME_uv_mask.png, NAME_albedo_uv.png, NAME_uv.mtl, NAME_uv.obj.

        Args:
          paths: those five paths, in that order (`photos.inputs.OUTPUT_FILES`).
          photo: a `preparation.photo.PreparedPhoto` with its `photo_rgb`.
          result: the photo's reconstruction, with `face_shape`, `face_norm`,
            `face_color`, `face_texture` and `depth`.
        """
        from texture.bake import TextureSum, albedo_texture, bake_photo
        from texture.files import write_texture, write_textured_mesh

        texture_path, mask_path, albedo_path, material_path, mesh_path = paths
        baked = bake_photo(self.texel_map, photo.photo_rgb, photo.trans_params,
                           result["face_shape"], result["face_norm"], result["depth"],
                           result["face_color"])
        one = TextureSum(self.texel_map)
        one.add(*baked)
        write_texture(texture_path, mask_path, one)
        result_files.write_png(albedo_path, albedo_texture(self.texel_map,
                                                           result["face_texture"]))
        write_textured_mesh(material_path, mesh_path, texture_path.name, result["face_shape"],
                            self.atlas.uv, self.triangles)
        if self.merged is not None:
            self.merged.add(*baked)

    def write_set(self, paths, id_coeff):
        """SET_set_uv.png, its mask, SET_set_uv.mtl and SET_set_uv.obj: the photos' texture
        merged, on the set's identity with a neutral expression (unposed)."""
        from texture.files import neutral_shape, write_texture, write_textured_mesh

        texture_path, mask_path, material_path, mesh_path = paths
        write_texture(texture_path, mask_path, self.merged)
        write_textured_mesh(material_path, mesh_path, texture_path.name,
                            neutral_shape(self.front_model, id_coeff), self.atlas.uv,
                            self.triangles)
