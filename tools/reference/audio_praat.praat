# Praat's measures of a sound file (tools/reference/audio_ref.py runs it):
#   praat --run tools/reference/audio_praat.praat IN.wav OUT.txt
# The sound is converted to mono (channels averaged) first. OUT.txt:
#   # frames N t1 T                       the pitch frames: N of them, the first at time T (s)
#   # jitter_local J shimmer_local_dB S   over the whole sound (PointProcess (periodic, cc))
#   then one line a pitch frame:  F0 F1 F2 F3 B1 B2 B3 HNR
# F0: To Pitch (ac): 0.01, 75, 15, no, 0.03, 0.45, 0.01, 0.35, 0.14, 600 (0: unvoiced);
# formants: To Formant (burg): 0.01, 5, 5500, 0.025, 50, read at the pitch frame's time (linear);
# HNR: To Harmonicity (ac): 0.01, 75, 0.1, 4.5 at that time (cubic). Undefined values are 0.
form Measures
    sentence input
    sentence output
endform
sound = Read from file: input$
channels = Get number of channels
if channels > 1
    mono = Convert to mono
    removeObject: sound
    sound = mono
endif
selectObject: sound
pitch = To Pitch (ac): 0.01, 75, 15, "no", 0.03, 0.45, 0.01, 0.35, 0.14, 600
selectObject: sound
formant = To Formant (burg): 0.01, 5, 5500, 0.025, 50
selectObject: sound
hnr = To Harmonicity (ac): 0.01, 75, 0.1, 4.5
selectObject: sound
pp = To PointProcess (periodic, cc): 75, 600
jitter = Get jitter (local): 0, 0, 0.0001, 0.02, 1.3
plusObject: sound
shimmer = Get shimmer (local_dB): 0, 0, 0.0001, 0.02, 1.3, 1.6
if jitter = undefined
    jitter = 0
endif
if shimmer = undefined
    shimmer = 0
endif
selectObject: pitch
n = Get number of frames
t1 = Get time from frame number: 1
text$ = "# frames " + string$(n) + " t1 " + fixed$(t1, 9) + newline$
text$ = text$ + "# jitter_local " + fixed$(jitter, 6) + " shimmer_local_dB " + fixed$(shimmer, 6) + newline$
for i to n
    selectObject: pitch
    t = Get time from frame number: i
    f = Get value in frame: i, "Hertz"
    if f = undefined
        f = 0
    endif
    line$ = fixed$(f, 6)
    selectObject: formant
    for k to 3
        v = Get value at time: k, t, "hertz", "linear"
        if v = undefined
            v = 0
        endif
        line$ = line$ + " " + fixed$(v, 3)
    endfor
    for k to 3
        v = Get bandwidth at time: k, t, "hertz", "linear"
        if v = undefined
            v = 0
        endif
        line$ = line$ + " " + fixed$(v, 3)
    endfor
    selectObject: hnr
    v = Get value at time: t, "cubic"
    if v = undefined
        v = 0
    endif
    text$ = text$ + line$ + " " + fixed$(v, 3) + newline$
endfor
writeFile: output$, text$
