"""China Standard Time for the declaration service: :mod:`web._time` is the one
module (dates by the local date, times people read); this name stays for the
service's own imports."""

from web._time import CHINA_TIME, local_datetime, local_text

__all__ = ["CHINA_TIME", "local_datetime", "local_text"]
