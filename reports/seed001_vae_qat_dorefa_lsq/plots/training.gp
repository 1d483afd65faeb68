# made by qlab; run `gnuplot training.gp` here to redraw
DATA = "training.dat"
set title "Training and fine-tuning loss"
set xlabel "epoch"
set ylabel "loss"
set terminal pngcairo size 900,540 noenhanced
set output "training.png"
set grid
set xtics 1
plot DATA index 0 using 1:2 with linespoints lw 2 pt 7 title "vae on fashion-mnist"
set terminal svg size 900,540 dynamic noenhanced background rgb 'white'
set output "training.svg"
replot
