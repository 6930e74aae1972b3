"""The converter's zoo: real architectures from public packages (installed with ``--no-deps`` by
scripts/setup.sh), one module per family; ``ZOO`` lists every configuration."""

from __future__ import annotations

from tests.convert.zoo import codecs, convnext, enhancement, frontends, separation, tcn, vocoders
from tests.convert.zoo.models import Config

ZOO: list[Config] = [*vocoders.CONFIGS, *codecs.CONFIGS, *enhancement.CONFIGS,
                     *separation.CONFIGS, *tcn.CONFIGS, *convnext.CONFIGS,
                     *frontends.CONFIGS]
