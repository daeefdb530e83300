"""A contact sheet PNG: each target image beside its best prompts and their CLIP scores (Pillow)."""
import io
import textwrap

import numpy as np

from hpprompt.training import writers

THUMB = 160
WIDTH = 760


def write(path: str, rows: list[tuple[str, np.ndarray, list[dict]]]) -> None:
  """rows: (target name, uint8 RGB image, records with 'prompt', 'clip_score', 'perplexity')."""
  from PIL import Image  # noqa: PLC0415
  from PIL import ImageDraw  # noqa: PLC0415
  from PIL import ImageFont  # noqa: PLC0415
  font = ImageFont.load_default()
  pad, line = 8, 14
  sheet = Image.new("RGB", (WIDTH, max(1, len(rows)) * (THUMB + 2 * pad)), "white")
  draw = ImageDraw.Draw(sheet)
  for i, (name, image, records) in enumerate(rows):
    top = i * (THUMB + 2 * pad) + pad
    thumb = Image.fromarray(image)
    thumb.thumbnail((THUMB, THUMB))
    sheet.paste(thumb, (pad, top))
    x, y = THUMB + 2 * pad, top
    draw.text((x, y), name[-90:], fill=(90, 90, 90), font=font)
    y += line + 2
    for r in records:
      text = f"{r['clip_score']:.3f}  ppl {r.get('perplexity', float('nan')):.0f}  {r['prompt']}"
      for part in textwrap.wrap(text, 95)[:3]:
        if y > top + THUMB - line:
          break
        draw.text((x, y), part, fill=(0, 0, 0), font=font)
        y += line
      y += 4
    if i:
      draw.line([(0, top - pad), (WIDTH, top - pad)], fill=(200, 200, 200))
  png = io.BytesIO()
  sheet.save(png, format="PNG")
  writers.write_file(path, png.getvalue())
