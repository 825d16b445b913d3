#!/usr/bin/env bash
# Build genlab's offline audio data: install Debian's digit recordings, speech synthesisers and a General MIDI
# soundfont when they are missing (root with apt-get), then build spoken_digits and notes into the data folder
# ($GENLAB_DATA/<name>, else ~/.cache/genlab/<name>). Heavy: run it alone, e.g. under flock /tmp/genlab-heavy.lock.
#   scripts/get_audio.sh              install what is missing, build both sets
#   scripts/get_audio.sh --install    only install the packages (quietly; never fails the caller)
set -uo pipefail
PACKAGES="espeak-ng flite festival asterisk-core-sounds-en-wav fluidsynth timgm6mb-soundfont"
missing=""
for cmd in espeak-ng flite text2wave fluidsynth; do
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
done
[ -f /usr/share/asterisk/sounds/en/digits/0.wav ] || missing="$missing asterisk-sounds"
ls /usr/share/sounds/sf2/*.sf2 >/dev/null 2>&1 || missing="$missing soundfont"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "get_audio: installing Debian's$missing" >&2
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES; } >/dev/null 2>&1; then
            echo "get_audio: apt-get failed; the audio data cannot be built here (the audio data tests skip)" >&2
        fi
    else
        echo "get_audio: missing$missing; install as root: apt-get install $PACKAGES (the audio data tests skip without them)" >&2
    fi
fi
[ "${1:-}" = "--install" ] && exit 0
PY="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$PY" ] || PY=python3
"$PY" -m genlab data build spoken_digits && "$PY" -m genlab data build notes
