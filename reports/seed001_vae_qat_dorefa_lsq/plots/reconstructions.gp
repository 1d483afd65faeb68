# made by qlab; run `gnuplot reconstructions.gp` here to redraw
DATA = "reconstructions.pgm"
set title "Test images, their reconstructions, and samples"
set xlabel ""
set ylabel ""
set terminal pngcairo size 900,540 noenhanced
set output "reconstructions.png"
set palette gray
unset colorbox
set cbrange [0:255]
set size ratio -1
unset xtics
set ytics ("test images" 14, "fp32" 42, "qat C0 (8 bits)" 70, "qat C1 (4 bits)" 98, "lsq C0 (8 bits)" 126, "lsq C1 (4 bits)" 154, "dorefa C0 (8 bits)" 182, "dorefa C1 (4 bits)" 210, "samples (fp32)" 238) scale 0
set yrange [279.5:-0.5]
set xrange [-0.5:223.5]
plot DATA binary skip=15 array=(224,280) format='%uchar' with image notitle
set terminal svg size 900,540 dynamic noenhanced background rgb 'white'
set output "reconstructions.svg"
replot
