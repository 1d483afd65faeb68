# made by qlab; run `gnuplot accuracy_heatmap.gp` here to redraw
DATA = "accuracy_heatmap.dat"
set title "Test accuracy (%) by weight and activation bits, rounding to nearest"
set xlabel "weight bits"
set ylabel "activation bits"
set terminal pngcairo size 900,540 noenhanced
set output "accuracy_heatmap.png"
set xtics ("1" 0, "2" 1, "4" 2, "8" 3, "16" 4)
set ytics ("1" 0, "2" 1, "4" 2, "8" 3, "16" 4)
set xrange [-0.5:4.5]
set yrange [-0.5:4.5]
set palette defined (0 "#b2182b", 0.5 "#f7f7f7", 1 "#2166ac")
set cblabel "accuracy_nearest"
plot DATA using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder fc palette notitle, \
     DATA using 1:2:(sprintf("%.1f", $3)) with labels notitle
set terminal svg size 900,540 dynamic noenhanced background rgb 'white'
set output "accuracy_heatmap.svg"
replot
