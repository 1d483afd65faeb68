# made by qlab; run `gnuplot reconstructions.gp` here to redraw
DATA = "reconstructions.pgm"
set title "Test images, their reconstructions, and samples from the prior"
set xlabel ""
set ylabel ""
set terminal pngcairo size 900,540 noenhanced
set output "reconstructions.png"
set palette gray
unset colorbox
set cbrange [0:255]
set size ratio -1
unset xtics
set ytics ("test images" 14, "fp32" 42, "dynamic" 70, "static" 98, "samples (fp32)" 126) scale 0
set yrange [167.5:-0.5]
set xrange [-0.5:223.5]
plot DATA binary skip=15 array=(224,168) format='%uchar' with image notitle
set terminal svg size 900,540 dynamic noenhanced background rgb 'white'
set output "reconstructions.svg"
replot
