"""`liteasr serve` end to end: real server processes on free loopback ports, called with the official
`openai` client. tiny.en + real speech for the transcripts; a tiny random Whisper for the error paths."""

import asyncio
import io
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from liteasr.data.audio import load_audio, read_dataset
from liteasr.errors import UserError
from liteasr.serve.process import ServerProcess
from liteasr.decoding.transcribe import DecodingOptions, transcribe

KEY = "test-key-123"
UPLOAD_LIMIT_MB = 1


class Server(ServerProcess):
    def client(self, key=KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=300)

    def health(self) -> dict:
        return httpx.get(self.url + "/health").json()


@pytest.fixture(scope="module")
def servers(random_whisper_dir, tiny_en_dir):
    """Both servers start at once (each pays its imports and model load in parallel)."""
    env = {"OMP_NUM_THREADS": "1"}
    tiny = Server(tiny_en_dir, env=env)
    small = Server(random_whisper_dir, "--api-key", KEY, "--max-batch", 2, "--max-wait-ms", 200,
                   "--max-queue", 1, "--max-upload-mb", UPLOAD_LIMIT_MB, env=env)
    yield tiny, small
    tiny.stop()
    small.stop()


@pytest.fixture(scope="module")
def tiny(servers):
    return servers[0]


@pytest.fixture(scope="module")
def small(servers):
    return servers[1]


def wav(seconds: float, tone: bool = True) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    audio = 0.1 * np.sin(2 * np.pi * 440 * t) if tone else np.zeros_like(t)
    buf = io.BytesIO()
    sf.write(buf, audio.astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def silence_flac(minutes: float) -> bytes:
    """Long audio, tiny upload: the server spends seconds on it (long-form), the upload stays small."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(16000 * 60 * minutes), np.float32), 16000, format="FLAC")
    return buf.getvalue()


@pytest.fixture(scope="module")
def clips(speech, tmp_path_factory):
    """Three real clips of 4-10 s, plus one of 30+ s made of consecutive utterances of one speaker
    (decoded long-form)."""
    ds = read_dataset(speech / "librispeech_other")
    chosen = [c for c in ds.clips if 4 <= sf.info(c.path).duration <= 10][:3]
    speaker = [c for c in ds.clips if c.path.name.split("-")[0] == ds.clips[0].path.name.split("-")[0]]
    long, audio = tmp_path_factory.mktemp("serve") / "long.wav", []
    for c in speaker:
        audio.append(load_audio(c.path))
        if sum(map(len, audio)) > 31 * 16000:
            break
    sf.write(long, np.concatenate(audio), 16000)
    return [c.path for c in chosen] + [long]


@pytest.mark.slow
def test_text_equals_liteasr_transcribe(tiny, tiny_en, clips):
    client = tiny.client()

    def ask(path):
        with open(path, "rb") as f:
            return client.audio.transcriptions.create(model="whisper-1", file=f).text

    with ThreadPoolExecutor(len(clips)) as pool:  # concurrent: the server batches them
        served = pool.map(ask, clips)
        # meanwhile, what `liteasr transcribe` prints: the same function on the same decoded files
        expected = transcribe(tiny_en, [load_audio(p) for p in clips], warmup=False, progress=False,
                              options=DecodingOptions.like_faster_whisper()).texts
        served = list(served)
    assert all(expected) and served == expected
    assert len(expected[-1].split()) > 60  # the long clip was decoded past its first 30 s


@pytest.mark.slow
def test_every_response_format(tiny, clips):
    client = tiny.client()
    path = clips[0]
    duration = sf.info(path).duration
    make = lambda fmt, **kw: client.audio.transcriptions.create(  # noqa: E731
        model="whisper-1", file=path.open("rb"), response_format=fmt, **kw)
    text = make("json", language="en", temperature=0.0).text
    assert make("text").strip() == text

    verbose = make("verbose_json")
    assert verbose.language == "english" and verbose.duration == pytest.approx(duration, abs=0.01)
    segments = verbose.segments
    assert segments and " ".join(s.text for s in segments) == verbose.text
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and all(s.start < s.end <= duration + 1 for s in segments)
    assert all(s.tokens for s in segments)
    # the search's own scores of each segment's window, as the default decoding found them
    assert all(-1.0 < s.avg_logprob < 0 and 0 < s.compression_ratio < 2.4 and 0 <= s.no_speech_prob < 0.6
               and s.temperature in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) for s in segments)
    assert {s.temperature for s in make("verbose_json", temperature=0.4).segments} == {0.4}  # one value: no fallback
    assert verbose.words is None  # words only when asked for, as OpenAI's API
    worded = make("verbose_json", timestamp_granularities=["word"])
    assert worded.text == verbose.text and worded.segments is None  # segments only when asked for (or nothing is)
    words = worded.words
    assert " ".join(w.word for w in words) == verbose.text  # OpenAI's words: no leading space
    assert [w.start for w in words] == sorted(w.start for w in words) and all(w.start <= w.end for w in words)
    assert 0 <= words[0].start and words[-1].end <= duration + 0.1
    both = make("verbose_json", timestamp_granularities=["word", "segment"])
    assert [(w.word, w.start, w.end) for w in both.words] == [(w.word, w.start, w.end) for w in words]
    assert both.segments[0].start == pytest.approx(words[0].start, abs=0.5)

    srt_cues = make("srt").strip().split("\n\n")
    vtt = make("vtt")
    assert vtt.startswith("WEBVTT\n\n")
    vtt_cues = vtt[len("WEBVTT\n\n"):].strip().split("\n\n")
    assert len(srt_cues) == len(vtt_cues) == len(segments)
    for i, (cue, vcue, s) in enumerate(zip(srt_cues, vtt_cues, segments), 1):
        number, times, body = cue.split("\n", 2)
        assert number == str(i) and body == s.text and vcue.split("\n", 1) == [times.replace(",", "."), s.text]
        start = times.split(" --> ")[0]
        h, m, sec = start.replace(",", ".").split(":")
        assert int(h) * 3600 + int(m) * 60 + float(sec) == pytest.approx(s.start, abs=1e-3)


def test_models_and_health(tiny, small):
    assert [m.id for m in tiny.client().models.list().data] == [str(tiny.health()["model"])]
    assert small.health()["status"] == "ok"  # no key needed for health checks


def assert_openai_error(exc_info, status, *fragments):
    err = exc_info.value
    assert err.status_code == status
    body = err.response.json()["error"]
    assert set(body) >= {"message", "type", "param", "code"}
    for f in fragments:
        assert f in body["message"], body["message"]
    return err


def create(server, data: bytes, name="clip.wav", key=KEY, **kw):
    return server.client(key).audio.transcriptions.create(model="whisper-1", file=(name, data), **kw)


def test_api_key_is_required(small):
    for key in ("wrong-key", "x"):
        with pytest.raises(openai.AuthenticationError) as exc:
            create(small, wav(1), key=key)
        assert_openai_error(exc, 401, "API key")
        with pytest.raises(openai.AuthenticationError):
            small.client(key).models.list()
    assert httpx.post(small.url + "/v1/audio/transcriptions", files={"file": wav(1)}).status_code == 401
    assert isinstance(create(small, wav(1)).text, str)


@pytest.mark.parametrize("case", ["too_large", "unreadable", "empty", "bad_format", "language", "no_file",
                                  "file_as_field", "temperature", "granularities"])
def test_bad_requests_get_openai_errors(small, case):
    if case == "too_large":
        with pytest.raises(openai.APIStatusError) as exc:
            create(small, wav(UPLOAD_LIMIT_MB * 2**20 / 32000 + 1))
        assert_openai_error(exc, 413, "limit of 1 MB")
    elif case == "unreadable":
        with pytest.raises(openai.BadRequestError) as exc:
            create(small, b"this is not audio" * 100, name="../../etc/passwd")
        err = assert_openai_error(exc, 400, "cannot read audio", "Format not recognised")
        assert "passwd" not in str(err.response.json())
    elif case == "empty":
        with pytest.raises(openai.BadRequestError) as exc:
            create(small, wav(0))
        assert_openai_error(exc, 400, "audio is empty")
    elif case == "bad_format":
        with pytest.raises(openai.BadRequestError) as exc:
            create(small, wav(1), response_format="diarized_json")
        assert_openai_error(exc, 400, "response_format must be one of json, text, srt, vtt, verbose_json")
    elif case == "language":
        with pytest.raises(openai.BadRequestError) as exc:
            create(small, wav(1), language="fr")
        assert_openai_error(exc, 400, "English-only")
    elif case == "no_file":
        r = httpx.post(small.url + "/v1/audio/transcriptions", data={"model": "whisper-1"},
                       headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 400 and "file" in r.json()["error"]["message"]
    elif case == "temperature":
        for value in ("hot", "1.5", "-0.1"):
            with pytest.raises(openai.BadRequestError) as exc:
                create(small, wav(1), temperature=value)
            assert_openai_error(exc, 400, "temperature must be a number from 0 to 1")
    elif case == "granularities":  # verbose_json only, segment or word
        segments = create(small, wav(1), response_format="verbose_json", timestamp_granularities=["segment"]).segments
        assert segments is not None
        for kwargs, message in ((dict(timestamp_granularities=["word"]), "needs response_format verbose_json"),
                                (dict(timestamp_granularities=["segment"]), "needs response_format verbose_json"),
                                (dict(response_format="verbose_json", timestamp_granularities=["letter"]),
                                 "must be segment or word, got 'letter'")):
            with pytest.raises(openai.BadRequestError) as exc:
                create(small, wav(1), **kwargs)
            assert_openai_error(exc, 400, message)
    elif case == "file_as_field":
        r = httpx.post(small.url + "/v1/audio/transcriptions", files={"file": wav(1), "language": ("en.txt", b"en")},
                       headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 400 and "`language` must be a text field" in r.json()["error"]["message"]


def hold_worker(server) -> ThreadPoolExecutor:
    """Send a long (silent, long-form) request and wait until the server has it: the worker is busy."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(create, server, silence_flac(3), "long.flac")
    deadline = time.monotonic() + 120
    while server.health()["pending"] == 0:
        assert time.monotonic() < deadline and not future.done(), future.exception() if future.done() else "timeout"
        time.sleep(0.005)
    return future


def test_full_queue_answers_503_with_retry_after(small):
    # max batch 2, queue 1: while the long request occupies the worker, at most 2 short ones get in
    busy = hold_worker(small)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(create, small, wav(1)) for _ in range(6)]
    refused = [f.exception() for f in futures if f.exception() is not None]
    assert len(refused) >= 4
    for err in refused:
        assert isinstance(err, openai.InternalServerError) and err.status_code == 503, err
        assert err.response.headers["Retry-After"] == "1" and "busy" in err.response.json()["error"]["message"]
    assert all(isinstance(f.result().text, str) for f in futures if f.exception() is None)
    assert isinstance(busy.result().text, str)


def test_one_failure_does_not_fail_batch_mates():
    from liteasr.serve.batcher import Batcher
    from liteasr.serve.engine import Options, Result

    batches = []

    def run(audios, options):  # fails whenever a poisoned clip is in the batch
        batches.append(len(audios))
        if any(a[0] < 0 for a in audios):
            raise RuntimeError("poisoned clip")
        return [Result(str(a[0]), 0.0, "english") for a in audios]

    async def main():
        batcher = Batcher(run, max_batch=4, max_wait_ms=100, max_queue=8)
        batcher.start()
        clips = [np.full(10, v, np.float32) for v in (1, -1, 2, 3)]
        out = await asyncio.gather(*(batcher.submit(c, Options()) for c in clips), return_exceptions=True)
        await batcher.stop()
        return out

    out = asyncio.run(main())
    assert [r.text for i, r in enumerate(out) if i != 1] == ["1.0", "2.0", "3.0"]
    assert isinstance(out[1], RuntimeError)
    assert batches == [4, 1, 1, 1, 1]  # one batch, then each member alone


def test_wait_adapts_lone_requests_start_at_once_concurrent_ones_batch():
    from liteasr.serve.batcher import Batcher
    from liteasr.serve.engine import Options, Result

    batches = []

    def run(audios, options):
        batches.append(len(audios))
        time.sleep(0.05)
        return [Result("x", 0.0, "english") for _ in audios]

    async def main():
        batcher = Batcher(run, max_batch=8, max_wait_ms=2000, max_queue=8)
        batcher.start()
        submit = lambda: batcher.submit(np.zeros(10, np.float32), Options())  # noqa: E731

        async def after(seconds):
            await asyncio.sleep(seconds)
            return await submit()

        t0 = time.perf_counter()
        for _ in range(3):  # one client, one request at a time: nothing to wait for
            await submit()
        lone = time.perf_counter() - t0
        await asyncio.gather(*(after(0.01 * i) for i in range(4)))  # a burst: the first runs, 3 queue behind it
        await asyncio.gather(after(0), after(0.1))  # concurrent traffic now: the first waits for the second
        await batcher.stop()
        return lone

    lone = asyncio.run(main())
    assert lone < 1.0, f"lone requests waited for batch-mates: {lone:.2f} s for 3"
    assert batches == [1, 1, 1, 1, 3, 2]


def test_taken_port_is_a_one_line_error(random_whisper_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = subprocess.run([sys.executable, "-m", "liteasr", "serve", str(random_whisper_dir), "--port",
                            str(taken.getsockname()[1])], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("liteasr: error: cannot listen on 127.0.0.1:"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_language_and_task_options(tiny_en):
    audio = [np.zeros(16000, np.float32)]
    run = lambda **kw: transcribe(tiny_en, audio, progress=False, warmup=False,  # noqa: E731
                                  options=DecodingOptions(**kw)).texts
    assert run(language="en", task="transcribe") == run() == run(language="English")
    for kw, message in [({"language": "de"}, "English-only: language must be en, got 'de'"),
                        ({"task": "translate"}, "English-only: it cannot translate"),
                        ({"task": "summarize"}, "task must be one of transcribe, translate")]:
        with pytest.raises(UserError, match=message):
            run(**kw)


def test_sigterm_finishes_in_flight_requests(small):
    """Last: it stops the server."""
    busy = hold_worker(small)
    small.proc.send_signal(signal.SIGTERM)
    assert isinstance(busy.result(timeout=120).text, str)
    assert small.stop() == 0
    assert "liteasr serve: stopped" in "".join(small.lines)
