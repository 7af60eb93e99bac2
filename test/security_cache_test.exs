defmodule DSPex.Native.SecurityCacheTest do
  # DSPy's LM cache is process-wide (memory, plus a disk cache under the user's home) and its
  # key leaves out api_key, api_base and base_url: same model and prompt, different server or
  # key, same answer. Here no answer crosses sessions unless both opt in with cache: :shared
  # (and even then only for the same server and key), and nothing is written to disk unless
  # a directory is named. Not async: it inspects DSPy's default disk cache directory.
  use ExUnit.Case, async: false

  import DSPex.Native.Test.Security
  import DSPex.Native.TestHelpers, only: [test_eval: 1]
  alias DSPex.Native.Session

  @moduletag :capture_log

  # The first LM call imports litellm (seconds) unless the warm-up finished already.
  @call 120_000

  setup do
    # A question no earlier run has asked, so no cache anywhere can already hold it.
    %{question: marker("cache-question")}
  end

  defp program(lm) do
    s = Session.open!(lm: lm)
    :ok = Session.create_program(s, "qa", signature: "question -> answer")
    s
  end

  defp ask(s, question) do
    assert {:ok, %{"answer" => answer}} =
             Session.execute(s, "qa", %{question: question}, timeout: @call)

    answer
  end

  # No file under DSPy's default disk cache directory holds any of `needles` (the cache
  # stores pickled requests and responses: prompts and answers appear there verbatim).
  defp refute_on_default_disk(needles) do
    {:ok, dir} =
      test_eval("""
      from dspy.utils.caching import default_cache_dir
      result = default_cache_dir()
      """)

    for file <- files(dir), content = File.read!(file), needle <- needles do
      refute content =~ needle, "#{inspect(needle)} was written to #{file}"
    end
  end

  defp files(dir) do
    case File.ls(dir) do
      {:ok, names} ->
        Enum.flat_map(names, fn name ->
          path = Path.join(dir, name)
          if File.dir?(path), do: files(path), else: [path]
        end)

      {:error, _} ->
        []
    end
  end

  test "default settings: two sessions with different servers and keys each ask their own",
       %{question: q} do
    one = start_counting_server("one")
    two = start_counting_server("two")
    a = program(lm(one, "sk-one"))
    b = program(lm(two, "sk-two"))

    assert ask(a, q) == "one-1"
    assert ask(b, q) == "two-1"
    assert [%{authorization: "Bearer sk-one"}] = chat_requests(one)
    assert [%{authorization: "Bearer sk-two"}] = chat_requests(two)
    refute_on_default_disk([q, "one-1", "two-1"])
  end

  test "default settings: two sessions on the same server and key do not share answers",
       %{question: q} do
    server = start_counting_server("same")
    a = program(lm(server, "sk-same"))
    b = program(lm(server, "sk-same"))

    assert ask(a, q) == "same-1"
    assert ask(b, q) == "same-2"
    assert length(chat_requests(server)) == 2
  end

  test "default settings: a session caches its own answers", %{question: q} do
    server = start_counting_server("own")
    s = program(lm(server, "sk-own"))

    assert ask(s, q) == "own-1"
    assert ask(s, q) == "own-1"
    assert length(chat_requests(server)) == 1
    refute_on_default_disk([q, "own-1"])
  end

  test "cache: false asks the server every time", %{question: q} do
    server = start_counting_server("nocache")
    s = program(lm(server, "sk-x", cache: false))

    assert ask(s, q) == "nocache-1"
    assert ask(s, q) == "nocache-2"
    assert length(chat_requests(server)) == 2
  end

  test "cache: :shared on the same server with different keys does not share", %{question: q} do
    server = start_counting_server("keys")
    a = program(lm(server, "sk-key-a", cache: :shared))
    b = program(lm(server, "sk-key-b", cache: :shared))

    assert ask(a, q) == "keys-1"
    assert ask(b, q) == "keys-2"

    assert Enum.map(chat_requests(server), & &1.authorization) ==
             ["Bearer sk-key-a", "Bearer sk-key-b"]

    refute_on_default_disk([q, "keys-1", "keys-2"])
  end

  test "cache: :shared on different servers with the same key does not share", %{question: q} do
    one = start_counting_server("one")
    two = start_counting_server("two")
    a = program(lm(one, "sk-same", cache: :shared))
    b = program(lm(two, "sk-same", cache: :shared))

    assert ask(a, q) == "one-1"
    assert ask(b, q) == "two-1"
    assert length(chat_requests(one)) == 1
    assert length(chat_requests(two)) == 1
  end

  test "cache: :shared on the same server and key shares the answer", %{question: q} do
    server = start_counting_server("shared")
    a = program(lm(server, "sk-shared", cache: :shared))
    b = program(lm(server, "sk-shared", cache: :shared))

    assert ask(a, q) == "shared-1"
    assert ask(b, q) == "shared-1"
    assert length(chat_requests(server)) == 1
    refute_on_default_disk([q, "shared-1"])
  end

  test "cache: :shared in one session only does not share", %{question: q} do
    server = start_counting_server("half")
    a = program(lm(server, "sk-half", cache: :shared))
    b = program(lm(server, "sk-half"))

    assert ask(a, q) == "half-1"
    assert ask(b, q) == "half-2"
    assert length(chat_requests(server)) == 2
  end

  test "cache: {:disk, dir} writes only there, and another session reading it gets a hit",
       %{question: q} do
    dir = sentinel_dir()
    server = start_counting_server("disk")
    a = program(lm(server, "sk-disk", cache: {:disk, dir}))

    assert ask(a, q) == "disk-1"
    assert files(dir) != []
    assert Enum.any?(files(dir), &(File.read!(&1) =~ "disk-1"))
    refute_on_default_disk([q, "disk-1"])

    Session.close(a)
    b = program(lm(server, "sk-disk", cache: {:disk, dir}))
    assert ask(b, q) == "disk-1"
    assert length(chat_requests(server)) == 1

    # The same directory with another key is another cache entry.
    c = program(lm(server, "sk-other", cache: {:disk, dir}))
    assert ask(c, q) == "disk-2"
    assert length(chat_requests(server)) == 2
  end
end
