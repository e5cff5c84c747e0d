/**
 * WHISPER_CPP_VERBOSE is an answer in the shape whisper.cpp's server gives for response_format=verbose_json
 * (examples/server/server.cpp): segment times are token times x 0.01 (hence the float noise), "words" are whisper
 * tokens with their leading spaces, and extra language fields follow.
 */
export const WHISPER_CPP_VERBOSE = {
  task: "transcribe",
  language: "english",
  duration: 3.5,
  text: " And so my fellow Americans,\n ask not.\n",
  segments: [
    {
      id: 0,
      text: " And so my fellow Americans,",
      start: 0,
      end: 2.0000000000000004,
      tokens: [400, 370, 452, 7177, 6280, 11],
      words: [
        // biome-ignore lint/correctness/noPrecisionLoss: the digits whisper.cpp's server printed, kept as it printed them
        { word: " And", start: 0, end: 0.32000000000000003, t_dtw: -1, probability: 0.91 },
        // biome-ignore lint/correctness/noPrecisionLoss: the digits whisper.cpp's server printed, kept as it printed them
        { word: " so", start: 0.32000000000000003, end: 0.5, t_dtw: -1, probability: 0.95 },
        { word: " my", start: 0.5, end: 0.7000000000000001, t_dtw: -1, probability: 0.97 },
        { word: " fellow", start: 0.7000000000000001, end: 1.1, t_dtw: -1, probability: 0.98 },
        { word: " Amer", start: 1.1, end: 1.4000000000000001, t_dtw: -1, probability: 0.9 },
        { word: "icans", start: 1.4000000000000001, end: 1.9000000000000001, t_dtw: -1, probability: 0.99 },
        { word: ",", start: 1.9000000000000001, end: 2.0000000000000004, t_dtw: -1, probability: 0.6 },
      ],
      temperature: 0,
      avg_logprob: -0.21,
      no_speech_prob: 0.012,
    },
    {
      id: 1,
      text: " ask not.",
      start: 2.0000000000000004,
      end: 3.5,
      tokens: [1029, 406, 13],
      words: [
        { word: "[_BEG_]", start: 2.0000000000000004, end: 2.0000000000000004, t_dtw: -1, probability: 0.5 },
        { word: " ask", start: 2.0000000000000004, end: 2.6, t_dtw: -1, probability: 0.96 },
        { word: " not", start: 2.6, end: 3.2, t_dtw: -1, probability: 0.97 },
        { word: ".", start: 3.2, end: 3.5, t_dtw: -1, probability: 0.8 },
      ],
      temperature: 0,
      avg_logprob: -0.3,
      no_speech_prob: 0.02,
    },
  ],
  detected_language: "english",
  detected_language_probability: 0.98,
  language_probabilities: { en: 0.98 },
};

/** WHISPER_CPP_TEXT is whisper.cpp's text (and json "text"): each segment on its own line. */
export const WHISPER_CPP_TEXT = " And so my fellow Americans,\n ask not.\n";

/** WHISPER_CPP_SRT is whisper.cpp's srt answer for the same audio. */
export const WHISPER_CPP_SRT =
  "1\n00:00:00,000 --> 00:00:02,000\n And so my fellow Americans,\n\n2\n00:00:02,000 --> 00:00:03,500\n ask not.\n\n";

/** WHISPER_CPP_VTT is whisper.cpp's vtt answer for the same audio. */
export const WHISPER_CPP_VTT =
  "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n And so my fellow Americans,\n\n00:00:02.000 --> 00:00:03.500\n ask not.\n\n";

/** WHISPER_CPP_CONTENT_TYPES are the content types whisper.cpp's server labels each format with. */
export const WHISPER_CPP_CONTENT_TYPES: Readonly<Record<string, string>> = {
  json: "application/json",
  verbose_json: "application/json",
  text: "text/html; charset=utf-8",
  srt: "application/x-subrip",
  vtt: "text/vtt",
};
